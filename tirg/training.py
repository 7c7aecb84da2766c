"""The training loop of composition models: batches, loss, SGD steps, evaluation points, checkpoints.

Under torchrun (tirg.distributed.init_from_environment called first) every process runs `train`
with the same arguments: `config.batch_size` is the global batch, each process takes its slice,
the batch-based loss sees the global batch and BatchNorm its statistics, so the weights follow the
one-process run. Rank 0 alone creates the run folder, writes checkpoints, metrics, TensorBoard and
progress, and evaluates; the others wait for its result.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from tirg import distributed
from tirg.checkpoint import (
    CHECKPOINT_NAME,
    atomic_torch_save,
    check_compatible,
    checkpoint_file,
    load_checkpoint,
    make_checkpoint,
    restore_rng_state,
)
from tirg.config import TrainConfig
from tirg.data import RetrievalDataset, image_transform
from tirg.data.base import ImageTransform
from tirg.early_stopping import BEST_CHECKPOINT_NAME, EarlyStopping, ItemView, validation_loss
from tirg.evaluate import evaluate
from tirg.fileio import remove_stale_temporaries
from tirg.losses import BASE_LOSS, weighted_loss
from tirg.models import ComposeModel
from tirg.optimization import make_optimizer, set_learning_rate
from tirg.runs import new_run_dir
from tirg.runtime import Stream, check_amp, cuda_devices, resolve_device, seeded_generator
from tirg.text import Vocabulary
from tirg.training_setup import TrainingData, build_training_model, load_splits, make_loader, training_data, training_pairs

logger = logging.getLogger(__name__)

PointCallback = Callable[[pd.DataFrame, pd.DataFrame], None]


@dataclass
class TrainResult:
    """Where the run's checkpoints are and how it went.

    `metrics`: test recall of the last weights (empty when the test split was not evaluated).
    With validation (val_fraction > 0): `best_checkpoint` holds the weights of the lowest
    validation loss, `best_iteration` and `best_val_loss` say where and what it was.
    `points`: one row per evaluation point of this call (iteration; val_loss and improved when
    validating; the test metrics where the test split was evaluated); `train_loss`: iteration,
    value, the training loss as logged every log_every iterations.
    """

    run_dir: Path
    checkpoint: Path
    iteration: int
    metrics: dict[str, float]
    best_checkpoint: Path | None = None
    best_iteration: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    train_loss: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iteration", "value"]))


class LossStep(nn.Module):
    """The model's loss terms as a `forward`, which is what DistributedDataParallel wraps: its
    gradient averaging hooks into each forward. The batch-based losses see the global batch
    (tirg.distributed.gather_batch; the batch itself in one process)."""

    def __init__(self, model: ComposeModel):
        super().__init__()
        self.model = model

    def forward(
        self, source_images: torch.Tensor, texts: list[str], target_images: torch.Tensor, loss: str, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        return self.model.compute_loss_terms(source_images, texts, target_images, loss, generator, distributed.gather_batch)


@dataclass
class _Reporting:
    """Where a run reports besides its run folder: on rank 0 only."""

    writer: Any | None
    progress: bool
    on_point: PointCallback | None
    evaluate_test: bool
    testset: RetrievalDataset | None


@dataclass
class _LossWindow:
    """The training loss and its terms summed since the last logged point."""

    total: float = 0.0
    count: int = 0
    terms: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def add(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.total, self.count = self.total + loss.item(), self.count + 1
        for name, value in terms.items():
            self.terms[name] = self.terms.get(name, 0.0) + value.item()

    def mean(self, iteration: int, config: TrainConfig, learning_rate: float, writer: Any | None) -> float:
        """The window's mean loss over the global batch (written to `writer` with each term); starts a new window."""
        # Terms over one process's rows (reconstructions) are averaged into the global batch's.
        totals = distributed.mean_across(torch.tensor([self.total, *self.terms.values()], dtype=torch.float64))
        total, terms = float(totals[0]), dict(zip(self.terms, totals[1:].tolist()))
        mean_loss = total / self.count
        if writer is not None:
            # Each term unweighted under its own name (the base one as the loss's name), and their weighted sum.
            for name, value in terms.items():
                writer.add_scalar(f"train/{config.loss if name == BASE_LOSS else name}", value / self.count, iteration)
            if len(terms) > 1:
                writer.add_scalar("train/total_loss", mean_loss, iteration)
            writer.add_scalar("train/learning_rate", learning_rate, iteration)
            writer.add_scalar("train/iterations_per_second", self.count / (time.perf_counter() - self.started), iteration)
        self.total, self.count, self.terms, self.started = 0.0, 0, {}, time.perf_counter()
        return mean_loss


class _Run:
    """One call of `train`: the model and its optimizer, early stopping, and what the run has written so far."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, device: torch.device, model: ComposeModel, data: TrainingData,
        transform: ImageTransform, reporting: _Reporting,
    ):  # fmt: skip
        self.config, self.run_dir, self.device, self.model, self.data = config, run_dir, device, model, data
        self.transform, self.reporting = transform, reporting
        self.main = distributed.is_main()
        self.optimizer = make_optimizer(model, config)
        self.stopping = EarlyStopping(config.patience)
        self.metrics: dict[str, float] = {}
        self.points: list[dict[str, Any]] = []
        self.train_loss: list[tuple[int, float]] = []
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.best_path = run_dir / BEST_CHECKPOINT_NAME

    def restore(self, state: dict[str, Any], resume_file: Path, vocabulary: Vocabulary) -> None:
        """Optimizer, generators, test metrics and early-stopping progress as the resumed checkpoint left them."""
        check_compatible(state, resume_file, self.config.model, vocabulary)
        if state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state)
        self.metrics = dict(state.get("metrics", {}))
        if state.get("early_stopping"):
            self.stopping.load_state_dict(state["early_stopping"])

    def save(self, iteration: int, path: Path | None = None) -> None:
        if not self.main:
            return
        remove_stale_temporaries(self.run_dir)
        config = self.config
        checkpoint = make_checkpoint(
            self.model, config.model, asdict(config), iteration, self.optimizer, self.metrics, self.stopping.state_dict()
        )
        atomic_torch_save(checkpoint, path or self.checkpoint_path)

    def evaluation_point(self, iteration: int, final: bool) -> None:
        """Evaluation on rank 0; the other processes wait for its test metrics and early-stopping state."""
        if self.data.split is None and not self.reporting.evaluate_test:
            return
        if self.main:
            self._evaluate_on_main(iteration, final)
        self.metrics, progress_state = distributed.from_main(lambda: (self.metrics, self.stopping.state_dict()))
        self.stopping.load_state_dict(progress_state)

    def _evaluate_on_main(self, iteration: int, final: bool) -> None:
        """Validation loss and/or test recall at `iteration`, without touching training's generators."""
        row: dict[str, Any] = {"iteration": iteration}
        with torch.random.fork_rng(devices=cuda_devices(self.device)):
            if self.data.split is not None:
                self._validate(iteration, row)
            if self.reporting.evaluate_test and (final or self.stopping.stopped or self.data.split is None):
                self._test(iteration, row)
        self.points.append(row)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.reporting.on_point is not None:
            self.reporting.on_point(pd.DataFrame(self.points), pd.DataFrame(self.train_loss, columns=["iteration", "value"]))

    def _validate(self, iteration: int, row: dict[str, Any]) -> None:
        config, writer = self.config, self.reporting.writer
        loss = validation_loss(
            self.model, ItemView(self.data.pairs, self.data.split.validation), config.loss, config.loss_weights(), config.batch_size,
            config.seed, self.device, config.loader_num_workers,
        )  # fmt: skip
        if not math.isfinite(loss):
            raise FloatingPointError(f"validation loss became {loss} at iteration {iteration}; lower --learning_rate")
        improved = self.stopping.update(loss, iteration)
        row.update(val_loss=loss, improved=improved)
        stopping = self.stopping
        logger.info("iteration %d: validation loss %.4f (best %.4f at %s)", iteration, loss, stopping.best_loss, stopping.best_iteration)
        if writer is not None:
            writer.add_scalar("validation/loss", loss, iteration)
        if improved:
            self.save(iteration, self.best_path)

    def _test(self, iteration: int, row: dict[str, Any]) -> None:
        writer = self.reporting.writer
        self.metrics = evaluate(
            self.model, self.reporting.testset, self.transform, device=self.device, num_workers=self.config.loader_num_workers
        )
        self.model.train()
        row.update(self.metrics)
        logger.info("iteration %d: %s", iteration, self.metrics)
        if writer is not None:
            for name, value in self.metrics.items():
                writer.add_scalar(f"test/{name}", value, iteration)

    def result(self, iteration: int) -> TrainResult:
        validating, stopping = self.data.split is not None, self.stopping
        return TrainResult(
            self.run_dir, self.checkpoint_path, iteration, self.metrics,
            best_checkpoint=self.best_path if validating and self.best_path.is_file() else None,
            best_iteration=stopping.best_iteration if validating else None,
            best_val_loss=stopping.best_loss if validating and stopping.best_iteration is not None else None,
            stopped_early=stopping.stopped and iteration < self.config.num_iters,
            points=pd.DataFrame(self.points),
            train_loss=pd.DataFrame(self.train_loss, columns=["iteration", "value"]),
        )  # fmt: skip


def train(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    writer: Any | None = None,
    progress: bool = False,
    trainset: RetrievalDataset | None = None,
    testset: RetrievalDataset | None = None,
    on_point: PointCallback | None = None,
    evaluate_test: bool = True,
) -> TrainResult:
    """Train `config.model` on `config.dataset` and return where the checkpoints are.

    `resume` is a checkpoint (or its run folder) to continue exactly where it stopped: same
    batches, optimizer state, learning rate, generator states and early-stopping progress;
    `config.num_iters` may be raised to train longer. With `config.val_fraction` > 0 a share of
    the training sources is held out; every `eval_every` iterations the validation loss is
    computed on them, the best weights are kept in `best_checkpoint.pth` and training stops after
    `patience` points without improvement. Evaluation draws on no training randomness and leaves
    the trajectory as it was. `evaluate_test`: test recall at the end (and at the evaluation
    points when not validating); False evaluates no test split. `on_point(points, train_loss)` is
    called after every evaluation point (a notebook redraws its live plot there). `writer` is a
    tensorboardX SummaryWriter or None. Under torchrun, see the module's docstring.
    """
    device = resolve_device(config.device)
    _check_launch(config, device)
    if not distributed.is_main():
        writer, progress, on_point = None, False, None
    resume_file = checkpoint_file(resume) if resume is not None else None
    state = load_checkpoint(resume_file) if resume_file is not None else None
    run_dir = _prepare_run_dir(config, resume_file.parent if resume_file is not None else run_dir)
    trainset, testset = load_splits(config, trainset, testset, evaluate_test)
    run = _start_run(config, run_dir, device, state, resume_file, trainset, _Reporting(writer, progress, on_point, evaluate_test, testset))
    start_iteration = int(state["iteration"]) if state is not None else 0
    iteration = _run_iterations(run, make_loader(run.data.training, config, start_iteration, device), start_iteration)
    if iteration == start_iteration and evaluate_test and not run.metrics:
        run.evaluation_point(iteration, final=True)  # a finished run resumed without a test result
    run.save(iteration)
    distributed.barrier()  # no process returns before rank 0's checkpoint is written
    if run.stopping.stopped:
        logger.info("stopped at iteration %d: %d validation points without improvement", iteration, run.stopping.since_best)
    return run.result(iteration)


def _check_launch(config: TrainConfig, device: torch.device) -> None:
    """Settings this launch cannot run, refused before any work."""
    distributed.check_batch_size(config.batch_size)
    check_amp(config.amp, device)
    if config.freeze_backbone and distributed.world_size() > 1:
        raise ValueError("--freeze_backbone trains the heads on features cached once; run it in one process, without torchrun")


def _prepare_run_dir(config: TrainConfig, run_dir: str | Path | None) -> Path:
    """The given (or resumed) run folder, else a new one named on rank 0; created, and cleared of a killed save's temporaries."""
    run_dir = Path(run_dir) if run_dir is not None else distributed.from_main(lambda: new_run_dir(config.log_dir, config.comment))
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)  # from a save killed mid-write
    return run_dir


def _start_run(
    config: TrainConfig, run_dir: Path, device: torch.device, state: dict[str, Any] | None, resume_file: Path | None,
    trainset: RetrievalDataset, reporting: _Reporting,
) -> _Run:  # fmt: skip
    """The model, its training data and optimizer, restored from `state` when resuming; config.json written."""
    transform = image_transform(config.resolved_image_size())
    pairs, split = training_pairs(config, trainset, transform)
    model, vocabulary = build_training_model(config, state, resume_file, trainset, device)
    data = training_data(config, model, pairs, split, run_dir, device)
    model = distributed.global_batch_layers(model, device)
    if config.channels_last:
        model.img_model.to(memory_format=torch.channels_last)
    run = _Run(config, run_dir, device, model, data, transform, reporting)
    if state is not None:
        run.restore(state, resume_file, vocabulary)
    if run.main:
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    return run


def _run_iterations(run: _Run, loader: torch.utils.data.DataLoader, start_iteration: int) -> int:
    """SGD steps from `start_iteration` to `num_iters` (or an early stop), with logging, evaluation points and checkpoints."""
    config = run.config
    step = distributed.data_parallel(LossStep(run.model), run.device)
    run.model.train()
    iteration = start_iteration
    batches = iter(loader)
    window = _LossWindow()
    bar = tqdm(total=config.num_iters, initial=start_iteration, desc=config.model, disable=not run.reporting.progress)
    while iteration < config.num_iters and not run.stopping.stopped:
        loss, terms = _step(run, step, next(batches), iteration)
        iteration += 1
        window.add(loss, terms)
        bar.update(1)
        if (config.log_every and iteration % config.log_every == 0) or iteration == config.num_iters:
            mean_loss = window.mean(iteration, config, run.optimizer.param_groups[0]["lr"], run.reporting.writer)
            run.train_loss.append((iteration, mean_loss))
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        if (config.eval_every and iteration % config.eval_every == 0) or iteration == config.num_iters:
            run.evaluation_point(iteration, final=iteration == config.num_iters)
        if config.checkpoint_every and iteration % config.checkpoint_every == 0 and iteration < config.num_iters:
            run.save(iteration)
    bar.close()
    return iteration


def _step(
    run: _Run, step: nn.Module, batch: tuple[torch.Tensor, Any, torch.Tensor], iteration: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One SGD step on `batch` at `iteration`: the weighted loss and its terms."""
    config = run.config
    source_images, texts, target_images = batch
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    source_images, target_images = (
        images.to(run.device, non_blocking=True, memory_format=memory_format) for images in (source_images, target_images)
    )
    set_learning_rate(run.optimizer, config, iteration)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=config.amp):
        terms = step(source_images, list(texts), target_images, config.loss, seeded_generator(config.seed, iteration, Stream.TRIPLETS))
    loss = weighted_loss(terms, config.loss_weights())
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}; lower --learning_rate")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss, terms
