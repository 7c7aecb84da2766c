"""Class-balanced batches: C random classes x M random images of each, as the original drew them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class ClassBalancedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of `classes_per_batch` distinct classes x `images_per_class` images each.

    Classes are drawn without replacement within a batch; a class's images are drawn
    without replacement when it has at least `images_per_class` of them, else with
    replacement. A batch lists its images class by class (the loss does not depend on
    the order). `batches_per_epoch` defaults to len(labels) // batch size, as in the
    original (74 batches for CUB's 5,994 training images). All draws come from
    `generator`, so a fresh generator seeded per epoch makes every epoch reproducible.
    """

    def __init__(
        self,
        labels: np.ndarray,
        classes_per_batch: int = 10,
        images_per_class: int = 8,
        generator: torch.Generator | None = None,
        batches_per_epoch: int | None = None,
    ) -> None:
        labels = np.asarray(labels)
        if classes_per_batch < 1 or images_per_class < 1:
            raise ValueError(f"classes_per_batch={classes_per_batch} and images_per_class={images_per_class} must be >= 1")
        self.classes = np.unique(labels)
        if len(self.classes) < classes_per_batch:
            raise ValueError(f"classes_per_batch={classes_per_batch} but the labels hold only {len(self.classes)} classes")
        self.members = [np.flatnonzero(labels == c) for c in self.classes]
        self.classes_per_batch = classes_per_batch
        self.images_per_class = images_per_class
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        batch_size = classes_per_batch * images_per_class
        self.batches_per_epoch = batches_per_epoch if batches_per_epoch is not None else max(1, len(labels) // batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.batches_per_epoch):
            chosen = torch.randperm(len(self.classes), generator=self.generator)[: self.classes_per_batch]
            batch: list[int] = []
            for c in chosen.tolist():
                members = self.members[c]
                if len(members) >= self.images_per_class:
                    picks = torch.randperm(len(members), generator=self.generator)[: self.images_per_class]
                else:
                    picks = torch.randint(len(members), (self.images_per_class,), generator=self.generator)
                batch.extend(int(i) for i in members[picks.numpy()])
            yield batch
