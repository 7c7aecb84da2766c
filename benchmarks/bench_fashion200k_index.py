"""Fashion200k loader indexing time on generated label files of the real size and format.

Writes train 172,049 and test 29,789 label lines (`path<TAB>score<TAB>caption`, five categories,
about 53k distinct captions drawn from a clothing vocabulary) and 33,480 test queries to a
temporary folder, then times opening each split (reading, caption post-processing, parent/child
mining, query texts). No images are needed. Prints the numbers and writes
results/bench/fashion200k_index.json.

    python benchmarks/bench_fashion200k_index.py [--repeats 3] [--out results/bench]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tirg.data import Fashion200kDataset
from tirg.fileio import atomic_write_text

# Real sizes (TIRG's loader on the real files): train images, unique captions, test images, queries.
TRAIN_IMAGES, UNIQUE_CAPTIONS, TEST_IMAGES, TEST_QUERIES = 172_049, 53_099, 29_789, 33_480
CATEGORIES = {
    "dress": ["dress", "gown", "sheath", "shift", "maxi", "midi", "mini", "wrap", "slip", "sundress"],
    "jacket": ["jacket", "blazer", "coat", "parka", "bomber", "vest", "trench", "puffer", "cardigan", "anorak"],
    "pants": ["pants", "jeans", "trousers", "leggings", "joggers", "chinos", "capri", "culottes", "shorts", "cargo"],
    "skirt": ["skirt", "pencil", "a-line", "pleated", "tulle", "denim", "wrap", "circle", "tiered", "midi"],
    "top": ["top", "tee", "blouse", "tank", "camisole", "shirt", "sweater", "tunic", "crop", "bodysuit"],
}
COLORS = "black white blue red green pink navy grey beige brown purple yellow orange ivory multicolor gold silver coral teal olive".split()
WORDS = (
    "slim fit relaxed cropped long short sleeve sleeveless v-neck crew scoop lace silk cotton linen wool leather "
    "suede knit ribbed striped floral printed embroidered sequin beaded ruffle pleat belted zip button hooded "
    "high-rise low-rise skinny wide-leg straight bootcut flared tapered stretch washed distressed ripped classic "
    "vintage casual party evening office plus petite maternity tall essential signature premium organic "
    "& . * ? off-the-shoulder one-shoulder halter strapless racerback boyfriend mom jogger utility"
).split()
BRANDS = [f"brand{n}" for n in range(300)]


def unique_captions(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """(category, caption) pairs: color, 1-4 descriptive words, garment, sometimes a brand."""
    captions: dict[str, str] = {}
    names = list(CATEGORIES)
    while len(captions) < count:
        category = names[rng.integers(len(names))]
        words = [COLORS[rng.integers(len(COLORS))]]
        words += [WORDS[i] for i in rng.integers(len(WORDS), size=rng.integers(1, 5))]
        garments = CATEGORIES[category]
        words.append(garments[rng.integers(len(garments))])
        if rng.random() < 0.5:
            words.append(BRANDS[rng.integers(len(BRANDS))])
        captions.setdefault(" ".join(words), category)
    return [(category, caption) for caption, category in captions.items()]


def write_labels(root: Path, split: str, lines: int, pool: list[tuple[str, str]], rng: np.random.Generator) -> list[str]:
    # Zipf-like reuse: a few captions cover many product photos, most cover one to three.
    weights = 1.0 / np.arange(1, len(pool) + 1) ** 0.6
    chosen = rng.choice(len(pool), size=lines, p=weights / weights.sum())
    chosen[: len(pool)] = np.arange(len(pool))[: min(len(pool), lines)]  # every caption at least once
    files: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    paths = []
    for n, index in enumerate(chosen.tolist()):
        category, caption = pool[index]
        path = f"women/{category}s/{category}_kind/{n}/{n}_0.jpeg"
        files[category].append(f"{path}\t{rng.random():.6f}\t{caption}\n")
        paths.append(path)
    for category, rows in files.items():
        (root / "labels" / f"{category}_{split}_detect_all.txt").write_text("".join(rows))
    return paths


def make_data(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True)
    train_pool = unique_captions(rng, UNIQUE_CAPTIONS)
    write_labels(root, "train", TRAIN_IMAGES, train_pool, rng)
    test_paths = write_labels(root, "test", TEST_IMAGES, unique_captions(rng, TEST_IMAGES // 3), rng)
    pairs = rng.integers(len(test_paths), size=(TEST_QUERIES, 2))
    (root / "test_queries.txt").write_text("".join(f"{test_paths[s]} {test_paths[t]}\n" for s, t in pairs.tolist()))


def timed(split: str, root: Path, repeats: int) -> tuple[list[float], dict[str, int]]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        dataset = Fashion200kDataset(root, split)
        seconds.append(time.perf_counter() - start)
    return seconds, dataset.summary()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "Fashion200k"
        start = time.perf_counter()
        make_data(root, args.seed)
        generate_seconds = time.perf_counter() - start
        train_seconds, train_counts = timed("train", root, args.repeats)
        test_seconds, test_counts = timed("test", root, args.repeats)
    result = {
        "benchmark": "fashion200k_index",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared with other jobs",
        "generate_seconds": round(generate_seconds, 2),
        "train": {
            "counts": train_counts,
            "seconds": [round(s, 3) for s in train_seconds],
            "median_seconds": round(statistics.median(train_seconds), 3),
        },
        "test": {
            "counts": test_counts,
            "seconds": [round(s, 3) for s in test_seconds],
            "median_seconds": round(statistics.median(test_seconds), 3),
        },
        "target_seconds": 10,
    }
    path = atomic_write_text(args.out / "fashion200k_index.json", json.dumps(result, indent=2) + "\n")
    print(f"Fashion200k indexing (median of {args.repeats}; label files generated in {generate_seconds:.1f} s)")
    for split in ("train", "test"):
        print(f"  {split}: {result[split]['median_seconds']:.2f} s  {result[split]['counts']}")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
