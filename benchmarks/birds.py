"""Real bird photos (the CUB-50 subset in ../shared/data) in Fashion200k's on-disk format, for the benchmarks.

The tree is written by the tests' own writer (tests/fixture_trees.py `write_cub_fashion200k`), so
benchmarks and tests read the same format. `pair_classes` picks every class whose name is two
words and shares its last word with another such class ("laysan albatross" / "sooty albatross"),
so that Fashion200k's mining yields one-word queries ("replace laysan with sooty").
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixture_trees import write_cub_fashion200k  # noqa: E402

# ../shared/data beside the clone (CI's layout), or $TIRG_SHARED_DATA as the tests read it.
DEFAULT_CUB = Path(os.environ.get("TIRG_SHARED_DATA", REPO.parent / "shared" / "data")) / "cub50" / "CUB_200_2011"


def pair_classes(cub_root: Path) -> tuple[str, ...]:
    """CUB folders named <id>.<Word>_<Category> whose category has at least two such classes."""
    groups: dict[str, list[str]] = defaultdict(list)
    for folder in sorted(p.name for p in (cub_root / "images").iterdir() if p.is_dir()):
        words = folder.split(".", 1)[1].split("_")
        if len(words) == 2:
            groups[words[1].lower()].append(folder)
    return tuple(folder for members in groups.values() if len(members) > 1 for folder in members)


def write_birds(root: Path, cub_root: Path, per_class: int, size: int) -> Path:
    """The bird tree at `root` (Fashion200k format), `per_class` photos of each paired class per split, `size` px."""
    if not (cub_root / "images.txt").is_file():
        raise FileNotFoundError(f"{cub_root} is not a CUB-200-2011 folder (no images.txt); pass --cub PATH")
    return write_cub_fashion200k(root, cub_root, per_class=per_class, size=size, classes=pair_classes(cub_root))


class ScalarLog:
    """A stand-in for a TensorBoard writer that keeps what `train()` logs: {tag: [(step, value), ...]}."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars[tag].append((step, float(value)))
