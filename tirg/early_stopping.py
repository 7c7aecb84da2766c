"""Early stopping on a held-out validation loss, the pieces `tirg.training.train` runs inside its loop.

A share of the training split's source images is held out (`hold_out`): their training items
never enter a batch. At every evaluation point `validation_loss` computes the training loss on
those items in eval mode, from fixed draws, so two points differ only by the weights.
`EarlyStopping` keeps the best loss seen and says when `patience` points have passed without
an improvement; the loop then writes `best_checkpoint.pth` and stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from tirg.data import PairView
from tirg.losses import weighted_loss
from tirg.models import ComposeModel
from tirg.runtime import Stream, seeded_generator, stream_seed

BEST_CHECKPOINT_NAME = "best_checkpoint.pth"


@dataclass(frozen=True)
class HeldOutSplit:
    """Training items (indices into `training_sources()`) split by source image."""

    training: list[int]
    validation: list[int]


def hold_out(sources: Sequence[int], fraction: float, seed: int, where: str) -> HeldOutSplit:
    """Hold out `fraction` of the distinct source images in `sources` (one per training item).

    Whole sources go to one side, so a held-out query image is never a training query and a
    source's items stay together, as the source-grouped batches need. The draw comes from the
    run seed's hold-out stream. `where` names the data set in the error.
    """
    distinct = np.unique(np.asarray(sources, dtype=np.int64))
    n_held = round(fraction * len(distinct))
    if not 1 <= n_held < len(distinct):
        raise ValueError(
            f"--val_fraction {fraction} of the {len(distinct)} training source images of {where} holds out {n_held};"
            " it must leave at least one source on each side"
        )
    rng = np.random.default_rng(stream_seed(seed, 0, Stream.HOLD_OUT))
    held = set(rng.choice(distinct, size=n_held, replace=False).tolist())
    split = HeldOutSplit(
        [item for item, source in enumerate(sources) if source not in held],
        [item for item, source in enumerate(sources) if source in held],
    )
    if len(split.validation) < 2:
        raise ValueError(f"--val_fraction {fraction} holds out {len(split.validation)} training item of {where}; the loss needs at least 2")
    return split


class ItemView(torch.utils.data.Dataset):
    """The items `items` of a `PairView`, renumbered from 0 and keyed as `PairView` is keyed."""

    def __init__(self, view: PairView, items: Sequence[int]):
        self.view = view
        self.items = list(items)
        self.sources = [view.sources[item] for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, str, torch.Tensor]:
        position, iteration = key if isinstance(key, tuple) else (key, 0)
        return self.view[(self.items[position], iteration)]


@torch.inference_mode()
def validation_loss(
    model: ComposeModel,
    pairs: torch.utils.data.Dataset,
    loss: str,
    weights: Mapping[str, float],
    batch_size: int,
    seed: int,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> float:
    """Mean weighted training loss over `pairs` (in order, iteration-0 draws) in eval mode.

    Batch i draws its triplets from the validation stream's draw i, so the value is the same at
    every call for the same weights. A last batch of one pair is skipped: neither loss is defined
    without a negative. The model's train/eval mode is left as it was.
    """
    was_training = model.training
    model.eval()
    # A private generator: a loader seed drawn from the global one would shift dropout.
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, num_workers=num_workers, generator=torch.Generator())
    total, count = 0.0, 0
    for index, (source_images, texts, target_images) in enumerate(loader):
        if len(texts) < 2:
            continue
        terms = model.compute_loss_terms(
            source_images.to(device), list(texts), target_images.to(device), loss, seeded_generator(seed, index, Stream.VALIDATION)
        )  # fmt: skip
        total, count = total + weighted_loss(terms, weights).item() * len(texts), count + len(texts)
    model.train(was_training)
    return total / count


@dataclass
class EarlyStopping:
    """The best validation loss so far and the points since; `patience` 0 never stops."""

    patience: int
    best_loss: float = math.inf
    best_iteration: int | None = None
    since_best: int = 0

    def update(self, loss: float, iteration: int) -> bool:
        """Record a validation point; True when it is a new best (strictly lower)."""
        if loss < self.best_loss:
            self.best_loss, self.best_iteration, self.since_best = loss, iteration, 0
            return True
        self.since_best += 1
        return False

    @property
    def stopped(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The progress of a resumed run (its patience is the run's own)."""
        self.best_loss, self.best_iteration, self.since_best = float(state["best_loss"]), state["best_iteration"], int(state["since_best"])
