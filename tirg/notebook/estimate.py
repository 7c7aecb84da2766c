"""How long a training run will take, from a short timed warm-up (notebook 01 prints it before training)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace

import numpy as np

from tirg.config import TrainConfig
from tirg.runtime import resolve_device
from tirg.training import train


class _StepClock:
    """A stand-in for the TensorBoard writer of `train`: the seconds each iteration took, from its
    "train/iterations_per_second" (logged at every iteration when log_every is 1)."""

    def __init__(self) -> None:
        self.step_seconds: dict[int, float] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if tag == "train/iterations_per_second":
            self.step_seconds[step] = 1.0 / value


@dataclass(frozen=True)
class TrainingEstimate:
    """How long `config` should train, from a short timed warm-up on the same data, model and device."""

    num_iters: int
    device: str
    seconds_per_iteration: float
    validation_points: int
    seconds_per_validation: float
    warmup_iters: int

    @property
    def seconds(self) -> float:
        return self.num_iters * self.seconds_per_iteration + self.validation_points * self.seconds_per_validation

    def __str__(self) -> str:
        validation = (
            f" and {self.validation_points} validation points of {self.seconds_per_validation:.1f} s" if self.validation_points else ""
        )
        return (
            f"{self.num_iters} iterations on {self.device}: about {_duration(self.seconds)} "
            f"({self.seconds_per_iteration:.2f} s per iteration{validation}, timed on a {self.warmup_iters}-iteration warm-up); "
            "early stopping may end it sooner"
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def estimate_training(config: TrainConfig, warmup_iters: int = 6) -> TrainingEstimate:
    """Train a copy of `config` for `warmup_iters` iterations in a temporary folder (validating halfway when
    `config` validates) and extrapolate: the first iteration (start-up) is left out, each later one counts
    at the median, a validation point at what the iteration after it took beyond that median."""
    if warmup_iters < 4:
        raise ValueError(f"warmup_iters={warmup_iters}: at least 4 are needed (a start-up step, two timed steps, one after validation)")
    validating = config.val_fraction > 0 and config.eval_every > 0
    half = warmup_iters // 2
    warmup = replace(config, num_iters=warmup_iters, log_every=1, eval_every=half if validating else 0, patience=0, checkpoint_every=0)
    clock = _StepClock()
    with tempfile.TemporaryDirectory(prefix="tirg-warmup-") as folder:
        train(warmup, run_dir=folder, writer=clock, evaluate_test=False)
    after_validation = half + 1
    steady = [seconds for step, seconds in clock.step_seconds.items() if step > 1 and not (validating and step == after_validation)]
    per_iteration = float(np.median(steady))
    per_validation = max(0.0, clock.step_seconds[after_validation] - per_iteration) if validating else 0.0
    points = config.num_iters // config.eval_every if validating else 0
    return TrainingEstimate(config.num_iters, str(resolve_device(config.device)), per_iteration, points, per_validation, warmup_iters)
