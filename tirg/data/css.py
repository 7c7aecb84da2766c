"""Loaders for the generated CSS data set and for TIRG's original CSS files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from tirg.data.base import Pair, Query, RetrievalDataset
from tirg.data.css_generate import DESCRIPTION_FILE, FORMAT
from tirg.errors import DataError
from tirg.safe_pickle import load_object_npy

ORIGINAL_CSS_FILE = "css_toy_dataset_novel2_small.dup.npy"
SPLITS = ("train", "test")


def _require_dir(root: Path, what: str) -> None:
    if not root.is_dir():
        raise DataError(f"{what} folder not found: {root} (--dataset_path); generate one with `tirg data css --out {root}`")


def _mods_to_examples(dataset: RetrievalDataset, mods: list[dict], text_key: str, source: Path) -> None:
    """Fill `pairs` and `queries` from mods [{from: [...], to: [...], <text_key>: str}]."""
    for number, mod in enumerate(mods):
        try:
            text, sources, targets = mod[text_key], mod["from"], mod["to"]
        except (KeyError, TypeError):
            raise DataError(f"{source}: mod {number} of split {dataset.split!r} needs keys 'from', 'to', {text_key!r}") from None
        if len(sources) != len(targets):
            raise DataError(f"{source}: mod {number} ({text!r}) has {len(sources)} 'from' ids but {len(targets)} 'to' ids")
        for source_id, target_id in zip(sources, targets):
            source_id, target_id = int(source_id), int(target_id)
            absent = [i for i in (source_id, target_id) if not 0 <= i < len(dataset)]
            if absent:
                raise DataError(
                    f"{source}: mod {number} ({text!r}) of split {dataset.split!r} names image {absent[0]}, "
                    f"but the split has images 0 to {len(dataset) - 1}"
                )
            dataset.pairs.append(Pair(source_id, text, target_id))
            dataset.queries.append(Query(source_id, text, dataset.captions[target_id], target_id))


class CSSDataset(RetrievalDataset):
    """A split of the data set written by `tirg data css` (css.json plus images/<split>/*.png)."""

    name = "css"

    def __init__(self, root: str | Path, split: str = "train"):
        super().__init__(Path(root), split)
        _require_dir(self.root, "CSS data set")
        description_path = self.root / DESCRIPTION_FILE
        try:
            with open(description_path) as f:
                description = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{description_path} is missing: is {self.root} a generated CSS data set?") from None
        except json.JSONDecodeError as error:
            raise DataError(f"{description_path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
        if not isinstance(description, dict) or description.get("format") != FORMAT:
            raise DataError(f"{description_path}: expected 'format': {FORMAT!r}")
        try:
            split_data = description["splits"][split]
            images = split_data["images"]
            mods = split_data["mods"]
            self.image_files = [self.root / image["file"] for image in images]
            self.captions = [str(image["caption"]) for image in images]
            self.objects: list[list[dict[str, Any]]] = [image["objects"] for image in images]
        except (KeyError, TypeError) as error:
            raise DataError(
                f"{description_path}: split {split!r} lacks {error}; expected splits.{split}.images[*].file/caption/objects and .mods"
            ) from None
        self.novel_compositions = [tuple(pair) for pair in description.get("novel_compositions", [])]
        _mods_to_examples(self, mods, "text", description_path)


class OriginalCSSDataset(RetrievalDataset):
    """TIRG's released CSS: `css_toy_dataset_novel2_small.dup.npy` and `images/css_<split>_<id:06d>.png`.

    The `.npy` holds a pickled dict {split: {'objects_img': [...], 'mods': [{'from', 'to',
    'to_str'}], 'labels': [...] (optional)}}; it is read without running pickled code.
    An image's caption is its label as a string, as in the original.
    """

    name = "css_original"

    def __init__(self, root: str | Path, split: str = "train"):
        super().__init__(Path(root), split)
        _require_dir(self.root, "original CSS data set")
        data_path = self.root / ORIGINAL_CSS_FILE
        if not data_path.is_file():
            raise DataError(f"{data_path} is missing (the original CSS description file)")
        try:
            data = load_object_npy(str(data_path))
            split_data = data[split]
            objects = list(split_data["objects_img"])
            mods = list(split_data["mods"])
        except (pickle.UnpicklingError, ValueError, EOFError, OSError) as error:
            raise DataError(f"{data_path}: not a readable CSS description ({error})") from None
        except (KeyError, TypeError, IndexError) as error:
            raise DataError(f"{data_path}: split {split!r} lacks {error}; expected {{'{split}': {{'objects_img', 'mods'}}}}") from None
        labels = split_data.get("labels")
        labels = list(range(len(objects))) if labels is None else [int(label) for label in labels]
        if len(labels) != len(objects):
            raise DataError(f"{data_path}: {len(labels)} labels for {len(objects)} images in split {split!r}")
        self.objects = objects
        self.captions = [str(label) for label in labels]
        self.image_files = [self.root / "images" / f"css_{split}_{index:06d}.png" for index in range(len(objects))]
        _mods_to_examples(self, mods, "to_str", data_path)
