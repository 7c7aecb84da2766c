"""MIT-States as TIRG reads it: `images/<adj noun>/`, the noun-disjoint split, adjective queries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tirg.data.base import Pair, Query, RetrievalDataset
from tirg.errors import DataError
from tirg.metrics import encode_captions, recall_at_ks

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# TIRG's 49 test nouns: no test noun is seen in training.
TEST_NOUNS = frozenset(
    "armor bracelet bush camera candy castle ceramic cheese clock clothes coffee fan fig fish foam forest "
    "fruit furniture garden gate glass horse island laptop lead lightning mirror orange paint persimmon "
    "plastic plate potato road rubber sand shell sky smoke steel stream table tea tomato vacuum wax wheel "
    "window wool".split()
)
# Each source is drawn twice in a row (two targets with different adjectives), as TIRG's loader did.
DRAWS_PER_SOURCE = 2


class MITStatesDataset(RetrievalDataset):
    """A split of MIT-States (Isola et al. 2015) with TIRG's protocol.

    Layout: `root/images/<adj> <noun>/<file>.jpg` (`.png`, as seed 002 converted them, is also
    read). Folders without a space, and those whose adjective is literally `adj` (the data set's
    unlabelled images), are skipped, as in the original. Folders and files are read in sorted order
    (the original used `os.listdir` order). The caption of an image is its folder name.

    Train: every image is a source drawn `DRAWS_PER_SOURCE` times per epoch (items `2*image` and
    `2*image+1`); both draws of a source take the same generator and pick two targets whose
    adjectives differ, each a random image of "<random adjective of the noun> <noun>" (which, as in
    the original, may be the source's own adjective). The text is the target adjective.
    Test: for every image and every other adjective of its noun, a query with that adjective as text
    and "<adjective> <noun>" as target caption. Evaluation adds adjective-only and noun-only recall.
    """

    name = "mitstates"

    def __init__(self, root: str | Path, split: str = "train"):
        super().__init__(Path(root), split)
        if split not in SPLITS:
            raise DataError(f"MIT-States has splits {SPLITS}, not {split!r}")
        images = self.root / "images"
        if not images.is_dir():
            raise DataError(f"MIT-States image folder not found: {images} (expected images/<adj noun>/*.jpg)")
        self.adjectives: list[str] = []
        self.nouns: list[str] = []
        for folder in sorted(p for p in images.iterdir() if p.is_dir() and " " in p.name):
            words = folder.name.split()
            if len(words) != 2:
                raise DataError(f"{folder}: expected a folder named '<adjective> <noun>'")
            adjective, noun = words
            if adjective == "adj" or (noun in TEST_NOUNS) != (split == "test"):
                continue
            for file in sorted(folder.iterdir()):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    self.image_files.append(file)
                    self.captions.append(f"{adjective} {noun}")
                    self.adjectives.append(adjective)
                    self.nouns.append(noun)
        if not self.image_files:
            raise DataError(f"{images} has no {split} images (folders '<adjective> <noun>' holding .jpg files)")
        self.caption_images: dict[str, list[int]] = {}
        self.noun_adjectives: dict[str, list[str]] = {}
        for index, (adjective, noun) in enumerate(zip(self.adjectives, self.nouns)):
            self.caption_images.setdefault(self.captions[index], []).append(index)
            adjectives = self.noun_adjectives.setdefault(noun, [])
            if adjective not in adjectives:
                adjectives.append(adjective)
        single = sorted(noun for noun, adjectives in self.noun_adjectives.items() if len(adjectives) < 2)
        if single:
            raise DataError(f"{images}: nouns with a single adjective cannot be modified: {single[:10]}")
        if split == "test":
            for source, (adjective, noun) in enumerate(zip(self.adjectives, self.nouns)):
                for target_adjective in self.noun_adjectives[noun]:
                    if target_adjective != adjective:
                        self.queries.append(Query(source, target_adjective, f"{target_adjective} {noun}"))
        logger.info("MIT-States %s: %s", split, self.summary())

    def texts(self) -> list[str]:
        return list(self.captions)

    def training_sources(self) -> list[int]:
        return [image for image in range(len(self)) for _ in range(DRAWS_PER_SOURCE)]

    def training_pair(self, item: int, rng: np.random.Generator) -> Pair:
        source, draw = divmod(item, DRAWS_PER_SOURCE)
        noun = self.nouns[source]
        adjectives = self.noun_adjectives[noun]
        while True:
            targets = [self._random_image(f"{adjectives[rng.integers(len(adjectives))]} {noun}", rng) for _ in range(DRAWS_PER_SOURCE)]
            if len({self.adjectives[t] for t in targets}) == DRAWS_PER_SOURCE:
                break
        target = targets[draw]
        return Pair(source, self.adjectives[target], target)

    def _random_image(self, caption: str, rng: np.random.Generator) -> int:
        images = self.caption_images[caption]
        return images[rng.integers(len(images))]

    def summary(self) -> dict[str, int]:
        return {**super().summary(), "nouns": len(self.noun_adjectives), "adjective-noun pairs": len(self.caption_images)}

    def retrieval_metrics(self, neighbors: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
        """TIRG's recall@k, plus `R@k_adj` / `R@k_noun`: a hit is any of the first k with the target's adjective / noun."""
        metrics = super().retrieval_metrics(neighbors, ks)
        for part, word in (("adj", 0), ("noun", 1)):
            targets = [q.target_caption.split()[word] for q in self.queries]
            gallery = [c.split()[word] for c in self.captions]
            recalls = recall_at_ks(neighbors, *encode_captions(targets, gallery), ks)
            metrics.update({f"R@{k}_{part}": value for k, value in recalls.items()})
        return metrics
