"""The interface every data set implements, and the torch views used for training."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tirg.data.verify import check_image_files, read_rgb
from tirg.errors import DataError
from tirg.metrics import encode_captions, recall_at_ks
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
    Loaders that draw training targets on the fly (TIRG's Fashion200k and MIT-States) leave
    `pairs` empty and override `training_sources` and `training_pair` instead.
    Evaluation asks the data set how deep to search (`search_depth`), whether a query's own
    source image is removed from its results (`exclude_source`) and what the ranked gallery
    ids score (`retrieval_metrics`); the default is TIRG's caption-match recall@k.
    """

    name: str = "dataset"
    exclude_source: bool = True

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

    def training_sources(self) -> list[int]:
        """Source image of each training item; the batch samplers shuffle and group these items."""
        return [pair.source for pair in self.pairs]

    def training_pair(self, item: int, rng: np.random.Generator) -> Pair:
        """Training item `item`. Loaders that draw the target on the fly draw it from `rng`, which
        the caller seeds from (run seed, iteration, source) alone, so no state is carried between calls."""
        return self.pairs[item]

    def summary(self) -> dict[str, int]:
        """Counts that `tirg data check` prints and the loaders log."""
        return {"images": len(self), "training items": len(self.training_sources()), "queries": len(self.queries)}

    def search_depth(self, ks: Sequence[int]) -> int:
        """Neighbours to retrieve per query so that `retrieval_metrics` can score every k in `ks`."""
        return max(ks)

    def retrieval_metrics(self, neighbors: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
        """Scores of `self.queries` from their ranked gallery ids (int [Q, K], best first, -1 empty).

        TIRG's protocol: a hit at k is any of the first k items whose caption is the target caption.
        """
        target_labels, gallery_labels = encode_captions([q.target_caption for q in self.queries], self.captions)
        return {f"R@{k}": value for k, value in recall_at_ks(neighbors, target_labels, gallery_labels, ks).items()}

    def query_subset(self, rows: Sequence[int]) -> RetrievalDataset:
        """A shallow copy whose queries are `rows` of these (images and captions shared), to score a sample of queries."""
        subset = copy.copy(self)
        subset.queries = [self.queries[i] for i in rows]
        return subset

    def load_image(self, index: int) -> Image.Image:
        return read_rgb(self.image_files[index], f"{self.name} {self.split}: image {index}")

    def check_images(self) -> None:
        """Raise DataError naming the first missing, truncated or unreadable image file (a header check)."""
        check_image_files(self.image_files, f"{self.name} {self.split} at {self.root}")


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
    """(source image, text, target image) for each training item.

    Indexed by `(item, iteration)` (what `IterationKeyedBatches` yields) or by a bare item, which
    counts as iteration 0. A loader that draws targets on the fly gets a generator seeded from
    (seed, iteration, source): the same draw in any worker, after any resume, and the pairs of
    one source in one batch (MIT-States' two queries) see the same generator. `images` replaces
    `dataset.load_image` (tirg.data.decoded.DecodedImages: images decoded once, kept in memory).
    """

    def __init__(
        self,
        dataset: RetrievalDataset,
        transform: ImageTransform,
        seed: int = 0,
        images: Callable[[int], Image.Image] | None = None,
    ):
        self.sources = dataset.training_sources()
        if not self.sources:
            raise DataError(f"{dataset.name} {dataset.split} at {dataset.root} has no training pairs")
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.load_image = images if images is not None else dataset.load_image

    def __len__(self) -> int:
        return len(self.sources)

    def pair(self, key: int | tuple[int, int]) -> Pair:
        """The training pair drawn for `key`: the same for the same (item, iteration) in any process."""
        item, iteration = key if isinstance(key, tuple) else (key, 0)
        return self.dataset.training_pair(item, np.random.default_rng([self.seed, iteration, self.sources[item]]))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, str, torch.Tensor]:
        pair = self.pair(key)
        return self.transform(self.load_image(pair.source)), pair.text, self.transform(self.load_image(pair.target))


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


class IterationKeyedBatches(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """The batches of a seeded batch sampler, each item keyed `(item, iteration)` for `PairView`."""

    def __init__(self, sampler: SeededBatchSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for iteration, batch in enumerate(self.sampler, start=self.sampler.start_iteration):
            yield [(item, iteration) for item in batch]
