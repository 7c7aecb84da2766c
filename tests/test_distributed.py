"""Data-parallel training under torchrun (2 gloo processes on CPU) against the one-process run, and the GPU-path options on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tirg.checkpoint import CHECKPOINT_NAME, load_checkpoint
from tirg.config import TrainConfig
from tirg.data import PairView, image_transform, load_dataset
from tirg.data.decoded import DecodedImages
from tirg.runtime import seed_everything
from tirg.training import train
from tirg.training_setup import resume_config

REPO_ROOT = Path(__file__).resolve().parents[1]

# 2 processes x 4 pairs = the global batch of 8; 64 px, the CSS renders' own size.
TRAIN_FLAGS = {
    "dataset": "css", "model": "tirg", "loss": "soft_triplet", "embed_dim": 16, "batch_size": 8, "image_size": 64,
    "checkpoint_every": 1000, "log_every": 1, "device": "cpu", "learning_rate": 0.01,
}  # fmt: skip

# Two processes differ from one only in the order floats are summed: BatchNorm's statistics and
# the gradient are sums of two halves instead of one sum over the batch, and DDP averages the two
# halves' gradients. A step's rounding differences (~1e-7 relative) pass through one SGD step of
# lr 0.01; 1e-4 absolute on weights of order 0.1-1 bounds them, while a wrong slice, a loss on the
# local half only or per-process BatchNorm statistics move weights by 1e-3 and more.
TOLERANCE = 1e-4

# Launch 1 trains to FIRST iterations, launch 2 resumes it to LAST. One step each: from the second
# step on, ResNet-18's large early gradients amplify float32 rounding (the sums' order) to ~5e-4 on
# some weights, so comparisons after several steps measure rounding, not the distribution. (The
# same layers in float64 give 2 processes the weights of 1 to ~1e-13 after 4 steps.)
FIRST, LAST = 1, 2


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m tirg ...` (a free port: parallel test runs do not meet)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tirg", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def flags(values: dict) -> list[str]:
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def assert_close_weights(first: dict, second: dict, tolerance: float) -> None:
    assert first.keys() == second.keys()
    for name, value in first.items():
        if value.is_floating_point():
            assert torch.allclose(value, second[name], rtol=0, atol=tolerance), (name, (value - second[name]).abs().max())
        else:
            assert torch.equal(value, second[name]), name  # num_batches_tracked


@pytest.fixture(scope="module")
def one_process(tiny_css, tmp_path_factory) -> dict:
    """The one-process run with the same global batch: weights after FIRST iterations."""
    config = TrainConfig(dataset_path=str(tiny_css), num_iters=FIRST, **TRAIN_FLAGS)
    seed_everything(0)
    return load_checkpoint(train(config, run_dir=tmp_path_factory.mktemp("one") / "run", evaluate_test=False).checkpoint)["model"]


@pytest.fixture(scope="module")
def two_processes(tiny_css, tmp_path_factory) -> tuple[Path, Path, dict[int, dict], list[str]]:
    """`torchrun --nproc_per_node=2 -m tirg train` for FIRST iterations, then `--resume` under 2 processes to LAST.

    Returns the log folder, a copy of the run as it was at iteration FIRST, the weights at FIRST and LAST, and
    what each launch printed.
    """
    work = tmp_path_factory.mktemp("two")
    log_dir = work / "runs"
    first = torchrun("train", *flags({**TRAIN_FLAGS, "dataset_path": tiny_css, "num_iters": FIRST, "log_dir": log_dir}), cwd=work)
    (run,) = list(log_dir.iterdir())
    at_first = shutil.copytree(run, work / "at_first")
    second = torchrun("train", "--resume", str(run), "--num_iters", str(LAST), cwd=work)
    weights = {FIRST: load_checkpoint(at_first / CHECKPOINT_NAME)["model"], LAST: load_checkpoint(run / CHECKPOINT_NAME)["model"]}
    return log_dir, at_first, weights, [first.stdout, second.stdout]


def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(one_process, two_processes):
    _, _, weights, _ = two_processes
    assert_close_weights(weights[FIRST], one_process, TOLERANCE)
    # Training moved the weights far beyond the tolerance, so agreement is not that of two untrained models.
    assert (weights[FIRST]["a"] - weights[LAST]["a"]).abs().max() > 10 * TOLERANCE


def test_resume_under_two_processes_continues_the_run(two_processes):
    # From the same checkpoint, one process continues the run as two do: the resumed processes took
    # the batches, optimizer state, generator states and iteration of the run, and nothing else.
    # (The differences from the one-process run grow with iterations as they pass through SGD, so
    # each comparison starts from the same weights. Two processes resumed and uninterrupted give
    # bit-identical weights: checked by hand, a third launch costs more than the test budget.)
    _, at_first, weights, _ = two_processes
    resumed = train(resume_config(at_first, num_iters=LAST), resume=at_first, evaluate_test=False)
    assert_close_weights(weights[LAST], load_checkpoint(resumed.checkpoint)["model"], TOLERANCE)


def test_only_rank_zero_writes_one_run_folder_and_one_checkpoint(two_processes):
    log_dir, _, _, outputs = two_processes
    (run,) = list(log_dir.iterdir())
    names = sorted(path.name for path in run.iterdir())
    assert [name for name in names if not name.startswith("events.out")] == ["config.json", CHECKPOINT_NAME, "metrics.jsonl"]
    # One TensorBoard writer per launch, rank 0's (each process writing one would give 4 files).
    assert len([name for name in names if name.startswith("events.out")]) == len(outputs)
    # One evaluation per launch (at its last iteration), written once, not once per process.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [FIRST, LAST]
    # One summary per launch: rank 0 prints, rank 1 does not.
    for output, iteration in zip(outputs, (FIRST, LAST)):
        assert output.count('"run_dir"') == 1 and json.loads(output)["iteration"] == iteration
    assert load_checkpoint(run / CHECKPOINT_NAME)["iteration"] == LAST


def test_cached_images_give_the_tensors_of_the_files(tiny_css):
    dataset = load_dataset("css", tiny_css, "train")
    transform = image_transform(64)
    cached, files = PairView(dataset, transform, images=DecodedImages(dataset)), PairView(dataset, transform)
    for item in (0, 5, len(files) - 1):
        (a_source, a_text, a_target), (b_source, b_text, b_target) = cached[(item, 1)], files[(item, 1)]
        assert a_text == b_text and torch.equal(a_source, b_source) and torch.equal(a_target, b_target)


def test_cache_images_trains_the_same_weights(tiny_css, tmp_path, one_process):
    seed_everything(0)
    config = TrainConfig(dataset_path=str(tiny_css), num_iters=FIRST, cache_images=True, **TRAIN_FLAGS)
    cached = load_checkpoint(train(config, run_dir=tmp_path / "cached", evaluate_test=False).checkpoint)["model"]
    assert_close_weights(cached, one_process, 0.0)


def test_amp_on_cpu_trains_with_a_loss_close_to_float32(tiny_css, tmp_path):
    config = TrainConfig(
        dataset_path=str(tiny_css), num_iters=1, **{**TRAIN_FLAGS, "image_size": 32}
    )  # bfloat16 convolutions are slow on CPU
    losses = {}
    for amp in (False, True):
        seed_everything(0)
        result = train(replace(config, amp=amp), run_dir=tmp_path / f"amp{amp}", evaluate_test=False)
        (losses[amp],) = result.train_loss["value"].tolist()
    # bfloat16 keeps 8 bits of mantissa (~0.4% per rounding); through ResNet-18 the first loss,
    # before any step, stays within a few percent of float32's.
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    assert losses[True] != losses[False]  # autocast was on: bfloat16 rounding changed the value
