"""The interface every data set implements, and the torch views used for training."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from tirg.errors import DataError
from tirg.runtime import seeded_generator


@dataclass(frozen=True)
class Pair:
    """A training example: `source` image, modification `text`, `target` image (ids into the split)."""

    source: int
    text: str
    target: int


@dataclass(frozen=True)
class Query:
    """A test query. Recall counts a hit for any gallery item whose caption is `target_caption`."""

    source: int
    text: str
    target_caption: str
    target: int | None = None


class RetrievalDataset:
    """One split of a composed-retrieval data set.

    Subclasses fill `root`, `split`, `image_files` (paths), `captions` (one per image),
    `pairs` (training examples) and `queries` (test queries); the gallery is all images.
    """

    name: str = "dataset"

    def __init__(self, root: Path, split: str):
        self.root = Path(root)
        self.split = split
        self.image_files: list[Path] = []
        self.captions: list[str] = []
        self.pairs: list[Pair] = []
        self.queries: list[Query] = []

    def __len__(self) -> int:
        return len(self.image_files)

    def texts(self) -> list[str]:
        """Texts the vocabulary is built from (TIRG's `get_all_texts`)."""
        return [pair.text for pair in self.pairs]

    def load_image(self, index: int) -> Image.Image:
        path = self.image_files[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"{self.name} {self.split}: image {index} is missing: {path}") from None
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{self.name} {self.split}: image {index} is not a readable image: {path} ({error})") from None


ImageTransform = Callable[[Image.Image], torch.Tensor]


class ImageView(torch.utils.data.Dataset):
    """Transformed gallery images, in id order."""

    def __init__(self, dataset: RetrievalDataset, transform: ImageTransform, indices: Sequence[int] | None = None):
        self.dataset = dataset
        self.transform = transform
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.transform(self.dataset.load_image(self.indices[position]))


class PairView(torch.utils.data.Dataset):
    """(source image, text, target image) for each training pair."""

    def __init__(self, dataset: RetrievalDataset, transform: ImageTransform):
        if not dataset.pairs:
            raise DataError(f"{dataset.name} {dataset.split} at {dataset.root} has no training pairs")
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, torch.Tensor]:
        pair = self.dataset.pairs[index]
        load = self.dataset.load_image
        return self.transform(load(pair.source)), pair.text, self.transform(load(pair.target))


class SeededBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Endless shuffled batches (drop_last) where batch number `it` depends only on (seed, it).

    Training can therefore stop after any iteration and resume with the very same batches.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start_iteration: int = 0):
        if batch_size > num_items:
            raise ValueError(f"batch_size={batch_size} is larger than the {num_items} training pairs")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_iteration = start_iteration
        self.batches_per_epoch = num_items // batch_size

    def batch(self, iteration: int) -> list[int]:
        epoch, position = divmod(iteration, self.batches_per_epoch)
        generator = seeded_generator(self.seed, epoch)
        order = torch.randperm(self.num_items, generator=generator)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while True:
            yield self.batch(iteration)
            iteration += 1


class SourceGroupedBatchSampler(SeededBatchSampler):
    """Batches of `batch_size / per_source` distinct sources, each with `per_source` of its pairs.

    TIRG's CSS and MIT-States loaders yield two queries on the same source image in a row,
    so each query meets its sibling's target as a hard negative in the batch; this is that
    sampling, made deterministic in (seed, iteration). Sources with fewer pairs are skipped.
    """

    def __init__(self, pair_sources: Sequence[int], batch_size: int, seed: int, start_iteration: int = 0, per_source: int = 2):
        if batch_size % per_source:
            raise ValueError(f"batch_size={batch_size} must be a multiple of per_source={per_source}")
        groups: dict[int, list[int]] = {}
        for index, source in enumerate(pair_sources):
            groups.setdefault(source, []).append(index)
        self.groups = [torch.tensor(members) for members in groups.values() if len(members) >= per_source]
        self.per_source = per_source
        super().__init__(len(self.groups) * per_source, batch_size, seed, start_iteration)

    def batch(self, iteration: int) -> list[int]:
        generator = seeded_generator(self.seed, iteration)
        chosen = torch.randperm(len(self.groups), generator=generator)[: self.batch_size // self.per_source]
        batch = []
        for group in chosen.tolist():
            members = self.groups[group]
            batch += members[torch.randperm(len(members), generator=generator)[: self.per_source]].tolist()
        return batch
