"""Data sets: one loader per on-disk format, all behind `RetrievalDataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tirg.data.base import (
    ImageView,
    IterationKeyedBatches,
    Pair,
    PairView,
    Query,
    RetrievalDataset,
    SeededBatchSampler,
    SourceGroupedBatchSampler,
)
from tirg.data.css import CSSDataset, OriginalCSSDataset
from tirg.data.css_generate import CSSGeneratorConfig, generate_css
from tirg.data.fashion200k import Fashion200kDataset
from tirg.data.fashioniq import FashionIQDataset
from tirg.data.mitstates import MITStatesDataset
from tirg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, image_transform
from tirg.data.verify import ImageProblem, check_image_files, find_image_problems

LOADERS: dict[str, type[RetrievalDataset]] = {
    "css": CSSDataset,
    "css_original": OriginalCSSDataset,
    "fashion200k": Fashion200kDataset,
    "mitstates": MITStatesDataset,
    "fashioniq": FashionIQDataset,
}

# Stored image size of each data set, when its images should not be resized.
NATIVE_IMAGE_SIZE: dict[str, int | None] = {"css": None, "css_original": None}

# Training pairs per source image in a batch, as the original loaders drew them
# (two queries on one source for CSS and MIT-States, independent pairs elsewhere).
PAIRS_PER_SOURCE: dict[str, int] = {"css": 2, "css_original": 2, "mitstates": 2}


def load_dataset(name: str, path: str | Path, split: str, **options: Any) -> RetrievalDataset:
    """Open split `split` of data set `name` (any case: the originals wrote `fashionIQ`) stored at `path`.

    `options` are the loader's keyword options (e.g. Fashion200k's `categories`, `template`).
    """
    if name.lower() not in LOADERS:
        raise ValueError(f"unknown dataset {name!r} (--dataset); choose from {sorted(LOADERS)}")
    return LOADERS[name.lower()](path, split, **options)


def default_image_size(name: str) -> int | None:
    return NATIVE_IMAGE_SIZE.get(name.lower(), 224)


def default_pairs_per_source(name: str) -> int:
    return PAIRS_PER_SOURCE.get(name.lower(), 1)


__all__ = [
    "CSSDataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CSSGeneratorConfig",
    "Fashion200kDataset",
    "FashionIQDataset",
    "ImageProblem",
    "ImageView",
    "IterationKeyedBatches",
    "LOADERS",
    "MITStatesDataset",
    "OriginalCSSDataset",
    "Pair",
    "PairView",
    "Query",
    "RetrievalDataset",
    "SeededBatchSampler",
    "SourceGroupedBatchSampler",
    "check_image_files",
    "default_image_size",
    "default_pairs_per_source",
    "find_image_problems",
    "generate_css",
    "image_transform",
    "load_dataset",
]
