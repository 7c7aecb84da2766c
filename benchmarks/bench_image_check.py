"""Cost of the image check that runs before training, against a full decode of the same files.

Writes --files JPEGs of Fashion200k-like size (--size px square, smooth photo-like content, about
the bytes of a real product photo) to a temporary folder, then times `find_image_problems` as
train() runs it (header and end marker of each file, no pixels decoded) and with decode=True (what
`tirg data check` does). The first pass warms the OS file cache, so both are timed on cached files,
as in a run that just listed its data. Prints the numbers and writes results/bench/image_check.json.

    python benchmarks/bench_image_check.py [--files 3000] [--size 256] [--out results/bench]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tirg.data.verify import find_image_problems
from tirg.fileio import atomic_write_text


def write_photos(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, size)
    paths = []
    for index in range(count):
        colour = rng.uniform(0, 255, 3)
        shade = np.outer(grid, rng.uniform(0.3, 1.0, size))[..., None] * colour
        pixels = np.clip(shade + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{index:06d}.jpeg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def timed(paths: list[Path], decode: bool) -> float:
    started = time.perf_counter()
    problems = find_image_problems(paths, decode=decode)
    elapsed = time.perf_counter() - started
    assert not problems, problems[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_photos(Path(folder), args.files, args.size)
        mean_bytes = float(np.mean([p.stat().st_size for p in paths]))
        timed(paths, decode=False)  # warm the file cache
        header_s = min(timed(paths, decode=False) for _ in range(3))
        decode_s = timed(paths, decode=True)
    result = {
        "files": args.files, "image_px": args.size, "mean_file_bytes": round(mean_bytes),
        "header_check_s": round(header_s, 3), "header_check_us_per_file": round(header_s / args.files * 1e6, 1),
        "full_decode_s": round(decode_s, 3), "full_decode_us_per_file": round(decode_s / args.files * 1e6, 1),
        "machine": platform.processor() or platform.machine(),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "image_check.json", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
