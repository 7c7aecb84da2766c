"""Tiny composed-retrieval data sets in their real on-disk formats, with images, written by the tests.

Fashion200k (labels/<category>_<split>_detect_all.txt, test_queries.txt, image tree), MIT-States
(images/<adjective noun>/*.jpg) and FashionIQ (captions/, image_splits/, images/). Images are
distinct random pixels: identical ones make degenerate batches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# (category, split) -> (relative image path, raw caption) as in labels/<cat>_<split>_detect_all.txt.
LABELS = {
    ("dress", "train"): [
        ("women/dresses/day_dresses/1/1_0.jpeg", "black mini dress"),
        ("women/dresses/day_dresses/1/1_1.jpeg", "black mini dress"),
        ("women/dresses/day_dresses/2/2_0.jpeg", "blue mini dress"),
        ("women/dresses/day_dresses/3/3_0.jpeg", "black maxi dress"),
        ("women/dresses/day_dresses/4/4_0.jpeg", "white dress."),
        ("women/dresses/day_dresses/5/5_0.jpeg", "pink dress. "),
        ("women/dresses/gowns/6/6_0.jpeg", "long gown"),
    ],
    ("top", "train"): [
        ("women/tops/tees/7/7_0.jpeg", "red shredded top"),
        ("women/tops/tees/8/8_0.jpeg", "green shredded top"),
        ("women/tops/tees/9/9_0.jpeg", "black & white top"),
    ],
    ("skirt", "train"): [
        ("women/skirts/mini/10/10_0.jpeg", "black and black skirt"),
        ("women/skirts/mini/11/11_0.jpeg", "white and white skirt"),
    ],
    ("pants", "train"): [
        ("women/pants/skinny/12/12_0.jpeg", "green park skinny pants"),
        ("women/pants/skinny/13/13_0.jpeg", "blue park skinny pants"),
    ],
    ("skirt", "test"): [
        ("women/skirts/long/20/20_0.jpeg", "red long skirt"),
        ("women/skirts/short/21/21_0.jpeg", "blue short skirt*"),
    ],
    ("jacket", "test"): [
        ("women/jackets/coats/22/22_0.jpeg", "navy wool coat"),
        ("women/jackets/coats/23/23_0.jpeg", "wool navy coat"),
    ],
    ("pants", "test"): [
        ("women/pants/skinny/24/24_0.jpeg", "green park skinny pants"),
        ("women/pants/skinny/25/25_0.jpeg", "blue park skinny pants"),
    ],
}
TEST_QUERIES = [
    ("women/skirts/long/20/20_0.jpeg", "women/skirts/short/21/21_0.jpeg"),
    ("women/jackets/coats/22/22_0.jpeg", "women/jackets/coats/23/23_0.jpeg"),
    ("women/pants/skinny/24/24_0.jpeg", "women/pants/skinny/25/25_0.jpeg"),
]


def write_fashion200k(root: Path, labels=LABELS, queries=TEST_QUERIES, images: bool = True) -> Path:
    (root / "labels").mkdir(parents=True)
    rng = np.random.default_rng(0)  # distinct images: identical ones make degenerate batches
    for (category, split), lines in labels.items():
        text = "".join(f"{path}\t{0.5 + i / 100:.6f}\t{caption}\n" for i, (path, caption) in enumerate(lines))
        (root / "labels" / f"{category}_{split}_detect_all.txt").write_text(text)
        for path, _ in lines:
            if images:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / path, format="JPEG")
    (root / "test_queries.txt").write_text("".join(f"{s} {t}\n" for s, t in queries))
    return root


# Folder -> number of images. apple and car are training nouns, glass and sand test nouns.
FOLDERS = {
    "ripe apple": 2, "rotten apple": 1, "sliced apple": 1, "new car": 2, "old car": 1,
    "broken glass": 2, "clear glass": 1, "dry sand": 1, "fine sand": 1, "wet sand": 1,
    "adj apple": 1,  # the data set's unlabelled images: skipped
    "apple": 1,  # no space: skipped
}  # fmt: skip


def write_mitstates(root: Path, folders=FOLDERS) -> Path:
    rng = np.random.default_rng(0)  # distinct images: identical ones make degenerate batches
    for folder, count in folders.items():
        (root / "images" / folder).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "images" / folder / f"img_{i}.jpg", format="JPEG")
    (root / "images" / "ripe apple" / "notes.txt").write_text("not an image")
    return root


def write_tiny_fiq(root: Path) -> Path:
    """dress [D1 D2 D3 X], shirt [S1 S2 X], toptee [T1 T2]: X is listed under two categories."""
    splits = {"dress": ["D1", "D2", "D3", "X"], "shirt": ["S1", "S2", "X"], "toptee": ["T1", "T2"]}
    captions = {
        "dress": [("D1", "D2", ["Is Red", "has sleeves"]), ("D2", "D3", ["is longer", "is blue"])],
        "shirt": [("S1", "X", ["is plaid", "has buttons"])],
        "toptee": [("T1", "T2", ["is green", "is tighter"])],
    }
    for folder in ("captions", "image_splits", "images"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for category, asins in splits.items():
        for split in ("train", "val", "test"):
            (root / "image_splits" / f"split.{category}.{split}.json").write_text(json.dumps(asins))
            entries = [{"candidate": c, "target": t, "captions": caps} for c, t, caps in captions[category]]
            if split == "test":
                entries = [{"candidate": e["candidate"], "captions": e["captions"]} for e in entries]
            (root / "captions" / f"cap.{category}.{split}.json").write_text(json.dumps(entries, indent=1))
        for asin in asins:
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{asin}.png")
    return root


def write_css_original(root: Path, n_images: int = 6) -> Path:
    """TIRG's released CSS layout: the pickled description `.npy` and images/css_<split>_<id:06d>.png.

    Each split has `n_images` scenes of one or two objects; mod 0 adds the blue triangle to the
    one-object scenes, mod 1 removes it again.
    """
    from tirg.data.css import ORIGINAL_CSS_FILE

    red = {"pos": (0.2, 0.2), "color": "red", "shape": "circle", "size": "large"}
    blue = {"pos": (0.5, 0.5), "color": "blue", "shape": "triangle", "size": "small"}
    objects = [[red] if i % 2 == 0 else [red, blue] for i in range(n_images)]
    ones, twos = list(range(0, n_images, 2)), list(range(1, n_images, 2))
    mods = [
        {"from": ones, "to": twos, "to_str": "add blue triangle to middle-center"},
        {"from": list(twos), "to": list(ones), "to_str": "remove blue triangle"},
    ]
    split = {"objects_img": objects, "labels": np.array([i % 2 for i in range(n_images)]), "mods": mods}
    (root / "images").mkdir(parents=True)
    np.save(root / ORIGINAL_CSS_FILE, np.array({"train": split, "test": split}, dtype=object), allow_pickle=True)
    rng = np.random.default_rng(0)
    for name in ("train", "test"):
        for index in range(n_images):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "images" / f"css_{name}_{index:06d}.png")
    return root


# CUB-200-2011 classes whose names are two words, grouped by their last word: within a group the
# captions differ in one word ("laysan albatross" / "sooty albatross").
CUB_PHOTO_CLASSES = ("002.Laysan_Albatross", "003.Sooty_Albatross", "005.Crested_Auklet", "006.Least_Auklet",
                     "007.Parakeet_Auklet", "009.Brewer_Blackbird", "011.Rusty_Blackbird")  # fmt: skip


def write_cub_fashion200k(root: Path, cub_root: Path, per_class: int = 4, size: int = 96, classes=CUB_PHOTO_CLASSES) -> Path:
    """Real bird photos from a CUB-200-2011 tree in Fashion200k's on-disk format.

    Category = the class name's last word, caption = the class name in lower case, label files
    labels/<category>_<split>_detect_all.txt, `per_class` images of each class per split (CUB's
    own split), shrunk to `size` px JPEGs at the label paths; test_queries.txt pairs every test
    image with one of another class of its category (captions differ in exactly one word).
    """
    listed = dict(line.split() for line in (cub_root / "images.txt").read_text().splitlines())
    is_train = dict(line.split() for line in (cub_root / "train_test_split.txt").read_text().splitlines())
    labels: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for folder in classes:
        caption = folder.split(".", 1)[1].replace("_", " ").lower()
        category = caption.split()[-1]
        for split, flag in (("train", "1"), ("test", "0")):
            paths = sorted(p for i, p in listed.items() if p.startswith(f"{folder}/") and is_train[i] == flag)[:per_class]
            labels.setdefault((category, split), []).extend((f"birds/{p}", caption) for p in paths)
    for lines in labels.values():
        for path, _ in lines:
            with Image.open(cub_root / "images" / path.removeprefix("birds/")) as image:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                image.convert("RGB").resize((size, size)).save(root / path, format="JPEG", quality=90)
    queries = []
    for (_, split), lines in labels.items():
        if split == "test":
            for path, caption in lines:
                others = [p for p, c in lines if c != caption]
                queries.append((path, others[len(queries) % len(others)]))
    return write_fashion200k(root, labels, queries, images=False)
