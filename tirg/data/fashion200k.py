"""Fashion200k as TIRG reads it: label files, caption mining, "replace A with B" queries."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tirg.data.base import Pair, Query, RetrievalDataset
from tirg.errors import DataError

logger = logging.getLogger(__name__)

CATEGORIES = ("dress", "jacket", "pants", "skirt", "top")
SPLITS = ("train", "test")
LABEL_FILE = re.compile(r"^(?P<category>[^_]+)_(?P<split>[^_]+)_detect_all\.txt$")
DEFAULT_TEMPLATE = "replace {} with {}"
# TIRG turns these marks into words, so that tokenisation (which strips punctuation) keeps them.
MARK_WORDS = {".": "dotmark", "?": "questionmark", "&": "andmark", "*": "starmark"}


def post_process_caption(caption: str) -> str:
    caption = caption.strip()
    for mark, word in MARK_WORDS.items():
        caption = caption.replace(mark, word)
    return caption


def parent_caption(caption: str, word: str) -> str:
    """TIRG's parent of `caption` for one of its words.

    Exactly as the original: every occurrence of `word` is removed as a substring (also inside
    longer words: "red" in "shredded"), then one level of double spaces is collapsed. The
    published modifiable-image counts depend on this, so it is kept.
    """
    return caption.replace(word, "").replace("  ", " ").strip()


def different_words(source: str, target: str) -> tuple[str, str]:
    """(first source word not in the target, first target word not in the source).

    Where every word is shared the original's loop variable is left at the last word; kept.
    """
    source_words, target_words = source.split(), target.split()
    source_set, target_set = set(source_words), set(target_words)
    source_word = next((w for w in source_words if w not in target_set), source_words[-1] if source_words else "")
    target_word = next((w for w in target_words if w not in source_set), target_words[-1] if target_words else "")
    return source_word, target_word


def mine_parents(unique_captions: Iterable[str]) -> dict[str, list[int]]:
    """Parent caption -> ids of its child captions (first-seen order), for parents with >= 2 children.

    One pass over the words of each unique caption, with dicts keyed by the parent string: linear
    in the number of caption words.
    """
    children: dict[str, dict[int, None]] = {}
    for caption_id, caption in enumerate(unique_captions):
        for word in caption.split():
            children.setdefault(parent_caption(caption, word), {})[caption_id] = None
    return {parent: list(ids) for parent, ids in children.items() if len(ids) >= 2}


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}:{line}: byte {data[error.start]:#04x} is not UTF-8 ({error.reason})") from None


class Fashion200kDataset(RetrievalDataset):
    """A split of Fashion200k (Han et al. 2017) read as TIRG's loader read it.

    Layout under `root`: `labels/<category>_<split>_detect_all.txt` (lines `path<TAB>score<TAB>caption`,
    category in dress, jacket, pants, skirt, top), the images at `root/<path>`
    (`women/<category>/<kind>/<id>/<id>_<n>.jpeg`), and `test_queries.txt` (`source_path target_path`
    per line) for the test split.

    Captions get `.?&*` turned into `dotmark`, `questionmark`, `andmark`, `starmark`. Training
    pairs are mined as the original did: a caption's parents are the caption with one word removed
    (see `parent_caption`); a parent with two or more child captions makes the images of those
    children modifiable; a pair is a modifiable source, a random parent of its caption, a random
    other child caption of that parent, and a random image with that caption, with the text
    `template.format(first source-only word, first target-only word)`.

    Training items are the modifiable images (the original sampled all images and redrew until it
    hit a modifiable one, which is the same distribution); `training_pair` draws the target from
    the generator it is given.

    Options:
        categories: only these categories' label files (the pants project: `("pants",)`); None: all
            found. With a subset, test queries naming an image outside the loaded labels are dropped
            and counted; with all categories such a query is an error.
        template: the query text, `"replace {} with {}"` (TIRG) or `"change {} to {}"` (pants project).
        test_queries_file: the test query file under `root`.
        label_file_order: `"sorted"` (default, reproducible) or `"listdir"` (`os.listdir` order, what
            the original did). The image list follows the label files in this order, and `texts()` of
            the train split is exactly the original `get_all_texts()`: every image's caption, in
            image order. With `"listdir"` on the original machine's file order, the first-seen token
            order of `texts()` rebuilds a 2019 TIRG checkpoint's vocabulary.
    """

    name = "fashion200k"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        categories: Sequence[str] | None = None,
        template: str = DEFAULT_TEMPLATE,
        test_queries_file: str = "test_queries.txt",
        label_file_order: str = "sorted",
    ):
        super().__init__(Path(root), split)
        if split not in SPLITS:
            raise DataError(f"Fashion200k has splits {SPLITS}, not {split!r}")
        if template.count("{}") != 2:
            raise ValueError(f"template={template!r} must hold two '{{}}' (source word, target word)")
        if label_file_order not in ("sorted", "listdir"):
            raise ValueError(f"label_file_order={label_file_order!r}: expected 'sorted' or 'listdir'")
        self.template = template
        self.categories = tuple(categories) if categories else None
        self.label_files = self._label_files(label_file_order)
        self.file_paths: list[str] = []
        self._read_labels()
        self.image_files = [self.root / path for path in self.file_paths]
        self.modifiable: list[int] = []
        self.dropped_queries = 0
        if split == "train":
            self._index_captions()
        else:
            self._read_test_queries(self.root / test_queries_file)
        logger.info("Fashion200k %s: %s", split, self.summary())

    def _label_files(self, order: str) -> list[Path]:
        labels = self.root / "labels"
        if not labels.is_dir():
            raise DataError(f"Fashion200k label folder not found: {labels} (expected labels/<category>_<split>_detect_all.txt)")
        names = os.listdir(labels)
        if order == "sorted":
            names.sort()
        self.category_label_files: dict[str, Path] = {}
        for name in names:
            match = LABEL_FILE.match(name)
            if match and match["split"] == self.split and (labels / name).is_file():
                self.category_label_files[match["category"]] = labels / name
        found = self.category_label_files
        if not found:
            raise DataError(f"{labels} has no {self.split} label files (<category>_{self.split}_detect_all.txt)")
        if self.categories is None:
            return list(found.values())
        unknown = [c for c in self.categories if c not in found]
        if unknown:
            raise DataError(f"{labels} has no {self.split} label file for categories {unknown}; found {sorted(found)}")
        return [path for category, path in found.items() if category in self.categories]

    def _read_labels(self) -> None:
        for path in self.label_files:
            before = len(self.file_paths)
            for number, line in enumerate(_read_text(path).splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) != 3:
                    raise DataError(f"{path}:{number}: expected 3 tab-separated fields (path, score, caption), found {len(fields)}")
                self.file_paths.append(fields[0])
                self.captions.append(post_process_caption(fields[2]))
            if len(self.file_paths) == before:
                raise DataError(f"{path}: no images (an empty category label file)")

    def _index_captions(self) -> None:
        caption_ids: dict[str, int] = {}
        self.caption_of_image = np.fromiter(
            (caption_ids.setdefault(c, len(caption_ids)) for c in self.captions), np.int64, len(self.captions)
        )
        self.unique_captions = list(caption_ids)
        self.caption_images: list[list[int]] = [[] for _ in self.unique_captions]
        for image, caption in enumerate(self.caption_of_image.tolist()):
            self.caption_images[caption].append(image)
        self.parent_children = list(mine_parents(self.unique_captions).values())
        self.caption_parents: dict[int, list[int]] = {}
        for parent, children in enumerate(self.parent_children):
            for child in children:
                self.caption_parents.setdefault(child, []).append(parent)
        modifiable = np.zeros(len(self.unique_captions), dtype=bool)
        modifiable[list(self.caption_parents)] = True
        self.modifiable = np.flatnonzero(modifiable[self.caption_of_image]).tolist()

    def _read_test_queries(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(f"Fashion200k test query file not found: {path} (TIRG's test_queries.txt: 'source_path target_path' per line)")
        image_of = {file_path: index for index, file_path in enumerate(self.file_paths)}
        # With a category subset, a query outside it is dropped, but a path in no label file is still an error.
        labelled = set(self.file_paths) if self.categories is None else self._all_labelled_paths()
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(f"{path}:{number}: expected 'source_path target_path', found {len(fields)} fields")
            unknown = [f for f in fields if f not in labelled]
            if unknown:
                raise DataError(f"{path}:{number}: image {unknown[0]} is not in the test label files ({self.root / 'labels'})")
            if any(f not in image_of for f in fields):
                self.dropped_queries += 1
                continue
            source, target = image_of[fields[0]], image_of[fields[1]]
            self.queries.append(Query(source, self.query_text(source, target), self.captions[target], target))

    def _all_labelled_paths(self) -> set[str]:
        """The image paths of every category's label file of this split, loaded or not."""
        return {
            line.split("\t", 1)[0] for path in self.category_label_files.values() for line in _read_text(path).splitlines() if line.strip()
        }

    def query_text(self, source: int, target: int) -> str:
        return self.template.format(*different_words(self.captions[source], self.captions[target]))

    def texts(self) -> list[str]:
        return list(self.captions)

    def training_sources(self) -> list[int]:
        return self.modifiable

    def training_pair(self, item: int, rng: np.random.Generator) -> Pair:
        source = self.modifiable[item]
        caption = int(self.caption_of_image[source])
        parents = self.caption_parents[caption]
        while True:
            children = self.parent_children[parents[rng.integers(len(parents))]]
            child = children[rng.integers(len(children))]
            if child != caption:
                break
        images = self.caption_images[child]
        target = images[rng.integers(len(images))]
        return Pair(source, self.query_text(source, target), target)

    def summary(self) -> dict[str, int]:
        counts = super().summary()
        if self.split == "train":
            counts.update({"unique captions": len(self.unique_captions), "modifiable images": len(self.modifiable)})
        else:
            counts["queries dropped (outside the categories)"] = self.dropped_queries
        return counts
