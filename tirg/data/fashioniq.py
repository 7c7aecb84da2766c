"""FashionIQ (Wu et al. 2021) with ComposeAE's protocol: joined captions, combined categories."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tirg.data.base import Pair, Query, RetrievalDataset
from tirg.errors import DataError

logger = logging.getLogger(__name__)

CATEGORIES = ("dress", "shirt", "toptee")
# Split asked for -> annotation files read. "test" is the validation set: FashionIQ results are
# reported on it (the trainer evaluates on "test"); "real_test" is the test set, whose targets are
# not published.
SPLIT_FILES = {"train": "train", "val": "val", "test": "val", "real_test": "test"}
IMAGE_FOLDERS = ("images", "all_imgs")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
JOINS = ("and_it", "plain")


def query_text(category: str, captions: Sequence[str], join: str) -> str:
    """ComposeAE's text: `"and_it"` gives "<category> <caption 1> and it <caption 2>", `"plain"` the
    captions joined by a space; lowercased either way."""
    if join == "and_it":
        return f"{category} {' and it '.join(captions)}".lower()
    return " ".join(captions).lower()


def _read_json_list(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"FashionIQ annotation file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 at byte {error.start} ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: malformed JSON at column {error.colno}: {error.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list")
    return data


class FashionIQDataset(RetrievalDataset):
    """A split of FashionIQ over one or more categories, as ComposeAE trained and evaluated it.

    Layout under `root`: `captions/cap.<category>.<split>.json` (list of {"candidate": ASIN,
    "target": ASIN, "captions": [str, str]}; no "target" in the test files),
    `image_splits/split.<category>.<split>.json` (list of ASINs), and the photos as
    `images/<ASIN>.jpg` (`.png` and `.jpeg` too; ComposeAE's `all_imgs/` folder is also found).

    The gallery is the split lists of the chosen categories concatenated in category order, as in
    ComposeAE (an ASIN listed under two categories appears twice); a query's candidate and target
    are its own category's entries. Each pair or query: source = candidate, text = `query_text`,
    target = target. An image's caption is the text of the query that targets it (targets are unique
    within a category and split), else its category word, so `captions[target]` is ComposeAE's
    "complete text query" for FashionIQ (the query text itself).

    Evaluation (`retrieval_metrics`): the source is not removed (as in ComposeAE); ranked ids map to
    ASINs, repeated ASINs are dropped, then per category R@k is the fraction of its queries whose
    target ASIN is among the first k; `R@k` is the mean over categories and `R_mean` the mean of
    R@10 and R@50. Unlike ComposeAE, counters are not carried from one k to the next and the list is
    not cut at 50 (so R@100 is not a copy of R@50).

    Options:
        categories: a subset of dress, shirt, toptee (default all three, ComposeAE's combined set).
        join: "and_it" or "plain"; None: ComposeAE's choice ("and_it" for all three categories,
            "plain" for a single one).
        skip_missing_images: drop gallery entries, pairs and queries whose image file is absent and
            count them (`skipped`), instead of failing.
    """

    name = "fashioniq"
    exclude_source = False

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        categories: Sequence[str] | None = None,
        join: str | None = None,
        skip_missing_images: bool = False,
    ):
        super().__init__(Path(root), split)
        if split not in SPLIT_FILES:
            raise DataError(f"FashionIQ has splits {tuple(SPLIT_FILES)}, not {split!r}")
        self.categories = tuple(categories) if categories else CATEGORIES
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise DataError(f"unknown FashionIQ categories {unknown}; choose from {CATEGORIES}")
        self.join = join or ("and_it" if len(self.categories) == len(CATEGORIES) else "plain")
        if self.join not in JOINS:
            raise ValueError(f"join={join!r}: expected one of {JOINS}")
        self.has_targets = split != "real_test"
        self.asins: list[str] = []
        self.image_categories: list[str] = []
        self.query_categories: list[str] = []
        self.annotated: dict[str, int] = {}
        self.skipped = {"images": 0, "queries": 0}
        self.skip_missing_images = skip_missing_images
        files = self._image_files()
        for category in self.categories:
            self._read_category(category, files)
        logger.info("FashionIQ %s: %s", split, self.summary())

    def _image_files(self) -> dict[str, Path]:
        folders = [self.root / name for name in IMAGE_FOLDERS if (self.root / name).is_dir()]
        if not folders and not self.skip_missing_images:
            raise DataError(
                f"FashionIQ image folder not found: {self.root / IMAGE_FOLDERS[0]} (expected images/<ASIN>.jpg; "
                "or pass skip_missing_images / --skip_missing_images to load the annotations without images)"
            )
        files: dict[str, Path] = {}
        for folder in reversed(folders):  # images/ wins over all_imgs/
            files.update({p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES})
        return files

    def _read_category(self, category: str, files: dict[str, Path]) -> None:
        split_file = self.root / "image_splits" / f"split.{category}.{SPLIT_FILES[self.split]}.json"
        caption_file = self.root / "captions" / f"cap.{category}.{SPLIT_FILES[self.split]}.json"
        listed = [str(asin) for asin in _read_json_list(split_file)]
        listed_asins = set(listed)
        if not listed:
            raise DataError(f"{split_file}: an empty category (no images)")
        missing = [asin for asin in listed if asin not in files]
        if missing and not self.skip_missing_images:
            raise DataError(
                f"{len(missing)} of the {len(listed)} images of {split_file} are missing from {self.root / IMAGE_FOLDERS[0]}, "
                f"e.g. {missing[:3]} (pass skip_missing_images / --skip_missing_images to skip and count them)"
            )
        self.skipped["images"] += len(missing)
        index_of: dict[str, int] = {}
        for asin in listed:
            if asin in files:
                index_of.setdefault(asin, len(self.asins))
                self.asins.append(asin)
                self.image_files.append(files[asin])
                self.image_categories.append(category)
                self.captions.append(category)
        entries = _read_json_list(caption_file)
        self.annotated[category] = len(entries)
        for number, entry in enumerate(entries):
            try:
                candidate, captions = str(entry["candidate"]), [str(c) for c in entry["captions"]]
                target_asin = str(entry["target"]) if self.has_targets else None
            except (KeyError, TypeError):
                keys = "'candidate', 'target', 'captions'" if self.has_targets else "'candidate', 'captions'"
                raise DataError(f"{caption_file}: entry {number} needs keys {keys}") from None
            for asin in (candidate, target_asin):
                if asin is not None and asin not in listed_asins:
                    raise DataError(f"{caption_file}: entry {number} names image {asin}, which {split_file} does not list")
            if candidate not in index_of or (target_asin is not None and target_asin not in index_of):
                self.skipped["queries"] += 1
                continue
            text = query_text(category, captions, self.join)
            source = index_of[candidate]
            target = index_of[target_asin] if target_asin is not None else None
            if target is not None:
                self.captions[target] = text
                self.pairs.append(Pair(source, text, target))
            self.queries.append(Query(source, text, text, target))
            self.query_categories.append(category)

    def summary(self) -> dict[str, int]:
        counts = super().summary()
        counts.update({f"{category} queries": self.query_categories.count(category) for category in self.categories})
        counts.update({"images skipped (missing)": self.skipped["images"], "queries skipped (missing image)": self.skipped["queries"]})
        return counts

    def query_subset(self, rows: Sequence[int]) -> FashionIQDataset:
        subset = super().query_subset(rows)
        subset.query_categories = [self.query_categories[i] for i in rows]
        return subset

    def search_depth(self, ks: Sequence[int]) -> int:
        # Room for every repeated ASIN ahead of the k-th distinct one.
        return max(ks) + len(self.asins) - len(set(self.asins))

    def ranked_asins(self, neighbors: np.ndarray, k: int) -> list[list[str]]:
        """The first `k` distinct ASINs of each row of ranked gallery ids (what a submission lists)."""
        ranked = []
        for row in np.asarray(neighbors).tolist():
            distinct = dict.fromkeys(self.asins[i] for i in row if i >= 0)
            ranked.append(list(distinct)[:k])
        return ranked

    def retrieval_metrics(self, neighbors: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
        if not self.has_targets:
            raise DataError("FashionIQ real_test has no targets to score; rank with ranked_asins() instead")
        ranked = self.ranked_asins(neighbors, max(ks))
        never = max(ks)
        first_hit = np.array(
            [row.index(self.asins[q.target]) if self.asins[q.target] in row else never for q, row in zip(self.queries, ranked)]
        )
        categories = np.array(self.query_categories)
        metrics: dict[str, float] = {}
        present = [c for c in self.categories if np.any(categories == c)]
        for k in ks:
            per_category = {c: float(np.mean(first_hit[categories == c] < k)) for c in present}
            metrics.update({f"R@{k}_{c}": value for c, value in per_category.items()})
            metrics[f"R@{k}"] = float(np.mean(list(per_category.values())))
        if "R@10" in metrics and "R@50" in metrics:
            metrics["R_mean"] = (metrics["R@10"] + metrics["R@50"]) / 2
        return metrics
