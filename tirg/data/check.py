"""`tirg data check`: open every split of a data set folder, decode every image, report counts and problems."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tirg.data import load_dataset
from tirg.data.verify import ImageProblem, find_image_problems
from tirg.errors import DataError

# Splits a training run reads (the trainer evaluates on "test"; FashionIQ's "test" is its val set).
CHECKED_SPLITS = {"fashioniq": ("train", "test", "real_test")}
# The class-labelled sets of deep hashing (tirg.hashing.data), checked here too.
HASHING_DATASETS = ("CUB", "Stanford_Dogs")
SHOWN_PROBLEMS = 5
PROBLEM_KINDS = ("missing", "truncated", "unreadable")


def _load_split(name: str, path: str | Path, split: str, options: dict[str, Any]) -> tuple[Sequence[Path], dict[str, int], int]:
    """(image files, counts to print, images the loader skipped as missing) of one split."""
    hashing = {n.lower(): n for n in HASHING_DATASETS}
    if name in hashing:
        from tirg.hashing.data import load_labeled_images

        images = load_labeled_images(hashing[name], path, split)
        return images.files, {"images": len(images), "classes": images.num_classes}, 0
    dataset = load_dataset(name, path, split, **options)
    # FashionIQ, opened with skip_missing_images, lists only the images it found and counts the rest.
    return dataset.image_files, dataset.summary(), getattr(dataset, "skipped", {}).get("images", 0)


def _problem_lines(split: str, problems: list[ImageProblem], skipped: int) -> list[str]:
    lines = []
    for kind in PROBLEM_KINDS:
        found = [p for p in problems if p.kind == kind]
        count = len(found) + (skipped if kind == "missing" else 0)
        if count:
            shown = "".join(f"\n    {p}" for p in found[:SHOWN_PROBLEMS])
            lines.append(f"  {split}: {count:,} images {kind}" + (f", e.g.{shown}" if shown else ""))
    return lines


def check_dataset(name: str, path: str | Path, progress: bool = False, **options: Any) -> tuple[bool, list[str]]:
    """(every split loaded and every image decodes, report lines). `progress` shows a bar per split."""
    name = name.lower()
    if name == "fashioniq":
        # Load the annotations even without images, so that the missing ones are counted.
        options = {**options, "skip_missing_images": True}
    ok, lines = True, [f"{name} at {path}"]
    for split in CHECKED_SPLITS.get(name, ("train", "test")):
        try:
            files, counts, skipped = _load_split(name, path, split, options)
        except (DataError, ValueError) as error:
            ok = False
            lines.append(f"  {split}: ERROR {error}")
            continue
        lines.append(f"  {split}: " + ", ".join(f"{what} {count:,}" for what, count in counts.items()))
        problems = find_image_problems(tqdm(files, desc=f"{split}: decoding images", unit="image", disable=not progress), decode=True)
        problem_lines = _problem_lines(split, problems, skipped)
        ok = ok and not problem_lines
        lines += problem_lines
    lines.append("OK" if ok else "PROBLEMS FOUND")
    return ok, lines
