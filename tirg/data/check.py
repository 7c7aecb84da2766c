"""`tirg data check`: open every split of a data set folder and report its counts and what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tirg.data import load_dataset
from tirg.errors import DataError

# Splits a training run reads (the trainer evaluates on "test"; FashionIQ's "test" is its val set).
CHECKED_SPLITS = {"fashioniq": ("train", "test", "real_test")}
SHOWN_MISSING = 5


def check_dataset(name: str, path: str | Path, **options: Any) -> tuple[bool, list[str]]:
    """(every split loaded with all its images present, report lines)."""
    name = name.lower()
    if name == "fashioniq":
        # Load the annotations even without images, so that the missing ones are counted.
        options = {**options, "skip_missing_images": True}
    ok, lines = True, [f"{name} at {path}"]
    for split in CHECKED_SPLITS.get(name, ("train", "test")):
        try:
            dataset = load_dataset(name, path, split, **options)
        except (DataError, ValueError) as error:
            ok = False
            lines.append(f"  {split}: ERROR {error}")
            continue
        counts = ", ".join(f"{what} {count:,}" for what, count in dataset.summary().items())
        lines.append(f"  {split}: {counts}")
        missing = [p for p in dataset.image_files if not p.is_file()]
        # FashionIQ, opened with skip_missing_images, lists only the images it found and counts the rest.
        skipped = getattr(dataset, "skipped", {}).get("images", 0)
        if missing or skipped:
            ok = False
            lines.append(f"  {split}: {len(missing) + skipped:,} images missing" + (f", e.g. {[str(p) for p in missing[:SHOWN_MISSING]]}" if missing else ""))
    lines.append("OK" if ok else "PROBLEMS FOUND")
    return ok, lines
