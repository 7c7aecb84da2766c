import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tirg.data import CSSDataset, CSSGeneratorConfig, OriginalCSSDataset, generate_css, load_dataset
from tirg.data.css import ORIGINAL_CSS_FILE
from tirg.data.css_generate import COLORS, render
from tirg.errors import DataError, OutputError


def _objects(image: dict) -> set[tuple]:
    return {(o["cell"], o["color"], o["shape"], o["size"]) for o in image["objects"]}


def _describe(obj: tuple) -> str:
    return f"{obj[3]} {obj[1]} {obj[2]}"


def test_each_modification_changes_exactly_what_its_text_says(tiny_css):
    description = json.loads((tiny_css / "css.json").read_text())
    checked = 0
    for split in ("train", "test"):
        images = description["splits"][split]["images"]
        for mod in description["splits"][split]["mods"]:
            for source_id, target_id in zip(mod["from"], mod["to"]):
                source, target = _objects(images[source_id]), _objects(images[target_id])
                text = mod["text"]
                if mod["kind"] == "add":
                    (added,) = target - source
                    assert source < target and text == f"add {_describe(added)} to {added[0]}"
                elif mod["kind"] == "remove":
                    (removed,) = source - target
                    assert target < source and text == f"remove {_describe(removed)}"
                    assert [_describe(o) for o in source].count(_describe(removed)) == 1
                else:
                    (before,), (after,) = source - target, target - source
                    assert before[0] == after[0] and before[0] in text
                    changed = [i for i in (1, 2, 3) if before[i] != after[i]]
                    assert len(changed) == 1 and text.endswith(after[changed[0]])
                checked += 1
    assert checked == sum(len(m["from"]) for s in ("train", "test") for m in description["splits"][s]["mods"]) > 50


def test_test_only_compositions_never_appear_in_train(tiny_css):
    description = json.loads((tiny_css / "css.json").read_text())
    novel = {tuple(pair) for pair in description["novel_compositions"]}
    assert len(novel) == 4
    train_pairs = {(o[1], o[2]) for image in description["splits"]["train"]["images"] for o in _objects(image)}
    assert not train_pairs & novel
    # Every colour and shape is still seen in training, only not in these combinations.
    assert {c for c, _ in train_pairs} == set(COLORS) and len({s for _, s in train_pairs}) == 3
    test_images = description["splits"]["test"]["images"]
    for mod in description["splits"]["test"]["mods"]:
        for source_id, target_id in zip(mod["from"], mod["to"]):
            seen = {(o[1], o[2]) for o in _objects(test_images[source_id]) | _objects(test_images[target_id])}
            assert seen & novel, "each test query involves a test-only composition"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_generation_is_deterministic_for_a_seed(tmp_path):
    config = CSSGeneratorConfig(seed=5, n_train=30, n_test=15)
    generate_css(tmp_path / "a", config)
    generate_css(tmp_path / "b", config)
    generate_css(tmp_path / "c", CSSGeneratorConfig(seed=6, n_train=30, n_test=15))
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b") != _tree_digest(tmp_path / "c")


def test_generation_refuses_to_overwrite_and_leaves_no_staging_folder(tmp_path):
    config = CSSGeneratorConfig(seed=5, n_train=10, n_test=10)
    generate_css(tmp_path / "css", config)
    with pytest.raises(OutputError, match="overwrite"):
        generate_css(tmp_path / "css", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["css"]


def test_renders_follow_the_original_geometry():
    # A large red rectangle centred at (0.5, 0.5) of 64 px covers rows and columns 24..39.
    image = render(((1, 1, "red", "rectangle", "large"),))
    red = np.all(image == COLORS["red"], axis=2)
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (24, 39, 24, 39)
    # The triangle's apex is up: its top row is narrower than its bottom row.
    triangle = np.all(render(((1, 1, "blue", "triangle", "large"),)) == COLORS["blue"], axis=2)
    widths = triangle.sum(axis=1)[triangle.any(axis=1)]
    assert widths[0] < widths[-1]


def test_loader_reads_pairs_queries_and_images(tiny_css):
    train = load_dataset("css", tiny_css, "train")
    test = load_dataset("css", tiny_css, "test")
    assert len(train) >= 80 and len(test) >= 40
    assert len(test.queries) == len(test.pairs) > 0
    query = test.queries[0]
    assert query.target_caption == test.captions[query.target]
    assert train.load_image(0).size == (64, 64)
    assert set(train.texts()) == {pair.text for pair in train.pairs}


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        CSSDataset(tmp_path / "nowhere")


def test_malformed_json_names_file_and_line(tmp_path):
    (tmp_path / "css.json").write_text('{\n  "format": "tirg-css-generated",\n  "splits": {,\n}')
    with pytest.raises(DataError, match=r"css\.json: malformed JSON at line 3"):
        CSSDataset(tmp_path)


def test_missing_and_corrupt_images_name_the_file(tiny_css, tmp_path):
    root = tmp_path / "css"
    shutil.copytree(tiny_css, root)
    dataset = CSSDataset(root, "train")
    os.remove(dataset.image_files[0])
    dataset.image_files[1].write_bytes(b"not a png")
    with pytest.raises(DataError, match="image 0 is missing: .*000000.png"):
        dataset.load_image(0)
    with pytest.raises(DataError, match="image 1 is not a readable image: .*000001.png"):
        dataset.load_image(1)


def _write_original_css(root: Path, payload: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / ORIGINAL_CSS_FILE, np.array(payload, dtype=object), allow_pickle=True)


def test_original_css_format_loads(tmp_path):
    objects = [
        [{"pos": (0.2, 0.2), "color": "red", "shape": "circle", "size": "large"}],
        [
            {"pos": (0.2, 0.2), "color": "red", "shape": "circle", "size": "large"},
            {"pos": (0.5, 0.5), "color": "blue", "shape": "triangle", "size": "small"},
        ],
        [{"pos": (0.2, 0.2), "color": "red", "shape": "circle", "size": "large"}],
    ]
    split = {
        "objects_img": objects,
        "labels": np.array([7, 8, 7]),
        "mods": [
            {"from": [0, 2], "to": [1, 1], "to_str": "add blue triangle to middle-center"},
            {"from": [1], "to": [2], "to_str": "remove blue triangle"},
        ],
    }
    _write_original_css(tmp_path, {"train": split, "test": split})
    (tmp_path / "images").mkdir()
    for index in range(3):
        Image.new("RGB", (64, 64), "white").save(tmp_path / "images" / f"css_test_{index:06d}.png")
    dataset = OriginalCSSDataset(tmp_path, "test")
    assert dataset.captions == ["7", "8", "7"]
    assert [(q.source, q.text, q.target_caption) for q in dataset.queries] == [
        (0, "add blue triangle to middle-center", "8"),
        (2, "add blue triangle to middle-center", "8"),
        (1, "remove blue triangle", "7"),
    ]
    assert dataset.load_image(2).size == (64, 64)
    with pytest.raises(DataError, match="css_test_000000.png|image 0"):
        OriginalCSSDataset(tmp_path, "train").load_image(0)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_original_css_refuses_pickled_code_and_bad_layout(tmp_path):
    _write_original_css(tmp_path / "evil", {"train": _RunsCode()})
    with pytest.raises(DataError, match="posix.system|nt.system"):
        OriginalCSSDataset(tmp_path / "evil", "train")
    _write_original_css(tmp_path / "layout", {"val": {}})
    with pytest.raises(DataError, match="split 'train'"):
        OriginalCSSDataset(tmp_path / "layout", "train")
    with pytest.raises(DataError, match=ORIGINAL_CSS_FILE):
        OriginalCSSDataset(tmp_path, "train")
