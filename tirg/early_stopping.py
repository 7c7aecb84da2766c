"""Training with a held-out validation loss, early stopping and the best checkpoint kept.

`train_with_early_stopping` runs `tirg.train.train` in chunks of `eval_every` iterations,
each chunk resuming the previous one's checkpoint. Resuming reproduces an uninterrupted
run exactly (same batches, optimizer state, learning rate and dropout generator), so the
chunks add no change to training, only the evaluation points between them. At each point
the validation loss is computed in eval mode on pairs held out of the training split; the
checkpoint with the lowest validation loss so far is copied to `best_checkpoint.pth`
(atomically), and training stops after `patience` points without improvement.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tirg.checkpoint import load_model
from tirg.data import PairView, RetrievalDataset, image_transform, load_dataset
from tirg.data.base import ImageTransform
from tirg.fileio import atomic_write
from tirg.models import ComposeModel
from tirg.runtime import resolve_device, seeded_generator
from tirg.train import TrainConfig, TrainResult, new_run_dir, train

logger = logging.getLogger(__name__)

BEST_CHECKPOINT_NAME = "best_checkpoint.pth"


@dataclass
class EarlyStoppingConfig:
    """When to evaluate and when to stop.

    eval_every: iterations between validation points (the last point is at num_iters).
    patience: validation points without an improvement of more than `min_delta` before stopping.
    val_fraction: share of the training split's source images whose pairs are held out.
    val_seed: seeds which sources are held out (independent of the training seed).
    val_batch_size: None: the training batch size (the batch classification loss depends on it).
    """

    eval_every: int = 100
    patience: int = 3
    min_delta: float = 0.0
    val_fraction: float = 0.1
    val_seed: int = 0
    val_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.eval_every < 1 or self.patience < 1:
            raise ValueError(f"eval_every={self.eval_every} and patience={self.patience} must be >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction} must be between 0 and 1")


@dataclass
class ScalarHistory:
    """A SummaryWriter stand-in that records every scalar and forwards it to `writer` (None allowed)."""

    writer: Any | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.rows.append({"tag": tag, "value": float(value), "iteration": int(step)})
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def series(self, tag: str) -> pd.DataFrame:
        """Columns iteration, value for one tag, in the order recorded."""
        rows = [(row["iteration"], row["value"]) for row in self.rows if row["tag"] == tag]
        return pd.DataFrame(rows, columns=["iteration", "value"])


@dataclass
class EarlyStoppingResult:
    run_dir: Path
    best_checkpoint: Path
    best_iteration: int
    best_val_loss: float
    stopped_early: bool
    points: pd.DataFrame  # one row per validation point: iteration, val_loss, improved, test R@k
    train_loss: pd.DataFrame  # iteration, value: the training loss as logged every log_every iterations
    last: TrainResult


def split_validation(dataset: RetrievalDataset, fraction: float, seed: int) -> tuple[RetrievalDataset, RetrievalDataset]:
    """(training part, validation part) of a training split, holding out whole source images.

    A seeded draw picks `fraction` of the distinct source images; every pair on those sources
    goes to validation. Splitting by source keeps a held-out query's image out of the training
    queries and keeps each source's pairs together, as the source-grouped batches need.
    """
    sources = np.array(sorted({pair.source for pair in dataset.pairs}))
    n_held = int(round(fraction * len(sources)))
    if not 1 <= n_held < len(sources):
        raise ValueError(
            f"val_fraction={fraction} of {len(sources)} source images in {dataset.root} ({dataset.split}) "
            f"holds out {n_held}; it must leave at least one source on each side"
        )
    held = set(np.random.default_rng(seed).choice(sources, size=n_held, replace=False).tolist())
    training, validation = copy.copy(dataset), copy.copy(dataset)
    training.pairs = [pair for pair in dataset.pairs if pair.source not in held]
    validation.pairs = [pair for pair in dataset.pairs if pair.source in held]
    validation.split = f"{dataset.split}-validation"
    return training, validation


@torch.inference_mode()
def validation_loss(
    model: ComposeModel,
    dataset: RetrievalDataset,
    transform: ImageTransform,
    loss: str,
    batch_size: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> float:
    """Mean training loss over `dataset.pairs` in eval mode (no dropout, no gradient).

    Batches are the pairs in their stored order, and batch i draws its triplets from
    (seed, i), so the value is the same at every call for the same weights. A last batch of
    one pair is skipped: neither loss is defined without a negative.
    """
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(
        PairView(dataset, transform), batch_size=batch_size, num_workers=num_workers, generator=torch.Generator()
    )
    total, count = 0.0, 0
    for index, (source_images, texts, target_images) in enumerate(loader):
        if len(texts) < 2:
            continue
        value = model.compute_loss(
            source_images.to(device), list(texts), target_images.to(device), loss, seeded_generator(seed, index)
        )
        total, count = total + value.item() * len(texts), count + len(texts)
    model.train(was_training)
    return total / count


def copy_checkpoint(source: Path, destination: Path) -> Path:
    """Copy a checkpoint file atomically, so an interrupted copy never replaces the previous best."""
    return atomic_write(destination, lambda f: f.write(Path(source).read_bytes()))


def train_with_early_stopping(
    config: TrainConfig,
    stopping: EarlyStoppingConfig,
    run_dir: str | Path | None = None,
    writer: Any | None = None,
    progress: bool = False,
    trainset: RetrievalDataset | None = None,
    testset: RetrievalDataset | None = None,
    on_point: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
) -> EarlyStoppingResult:
    """Train `config` (from scratch, or from `config.pretrained_model`) with early stopping.

    `on_point(points, train_loss)` is called after every validation point with the tables so
    far (a notebook redraws its live plot there). `writer` receives the training scalars plus
    `validation/loss`. Returns where the best checkpoint is and the curves.
    """
    if config.num_iters < 1:
        raise ValueError(f"num_iters={config.num_iters} must be >= 1")
    device = resolve_device(config.device)
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
    full = trainset or load_dataset(config.dataset, config.dataset_path, "train")
    training, validation = split_validation(full, stopping.val_fraction, stopping.val_seed)
    testset = testset or load_dataset(config.dataset, config.dataset_path, "test")
    transform = image_transform(config.resolved_image_size())
    logger.info("%d training pairs, %d held out for validation", len(training.pairs), len(validation.pairs))

    history = ScalarHistory(writer)
    best_path = run_dir / BEST_CHECKPOINT_NAME
    best_loss, best_iteration, since_best = float("inf"), 0, 0
    points: list[dict[str, Any]] = []
    resume: Path | None = None
    iteration, stopped_early = 0, False
    while iteration < config.num_iters:
        chunk = replace(config, num_iters=min(iteration + stopping.eval_every, config.num_iters))
        last = train(chunk, run_dir=run_dir, resume=resume, writer=history, progress=progress, trainset=training, testset=testset)
        resume, iteration = last.checkpoint, last.iteration
        model, _ = load_model(last.checkpoint, device)
        loss = validation_loss(
            model, validation, transform, config.loss, stopping.val_batch_size or config.batch_size,
            stopping.val_seed, device, config.loader_num_workers,
        )  # fmt: skip
        history.add_scalar("validation/loss", loss, iteration)
        improved = loss < best_loss - stopping.min_delta
        if improved:
            copy_checkpoint(last.checkpoint, best_path)
            best_loss, best_iteration, since_best = loss, iteration, 0
        else:
            since_best += 1
        points.append({"iteration": iteration, "val_loss": loss, "improved": improved, **last.metrics})
        logger.info("iteration %d: validation loss %.4f (best %.4f at %d)", iteration, loss, best_loss, best_iteration)
        if on_point is not None:
            on_point(pd.DataFrame(points), history.series(f"train/{config.loss}"))
        if since_best >= stopping.patience:
            stopped_early = iteration < config.num_iters
            break
    return EarlyStoppingResult(
        run_dir, best_path, best_iteration, best_loss, stopped_early, pd.DataFrame(points),
        history.series(f"train/{config.loss}"), last,
    )  # fmt: skip
