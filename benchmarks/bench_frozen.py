"""Seconds per training iteration of `tirg train` end to end against `--freeze_backbone`, and the one-off extraction.

Both train the same model (tirg, efficientnet_lite0 body by default) with the same batch size and
image size on real bird photos (CUB-50 in Fashion200k's format, benchmarks/birds.py). Runs
alternate between the two (end to end first in even rounds, frozen first in odd ones), so load on
a shared machine spreads over both. Seconds per iteration come from what train() logs every
`--log_every` iterations (iterations per second over each window); the first window, which holds
the loader's start, is left out. The frozen runs read one feature cache; its extraction is timed
once, as a frozen run of 0 iterations with an empty cache minus the same run with the cache filled.
Weights do not change the speed, so the body starts from random init (no extra needed).

    python benchmarks/bench_frozen.py [--image_size 224] [--batch_size 32] [--iters 20] [--rounds 3]

Prints the numbers and writes results/bench/frozen.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.birds import DEFAULT_CUB, ScalarLog, write_birds
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.fileio import atomic_write_text
from tirg.runtime import seed_everything
from tirg.training import train


def seconds_per_iteration(config: TrainConfig, run_dir: Path) -> float:
    """Mean seconds per iteration of one run, from the logged windows after the first."""
    log = ScalarLog()
    seed_everything(config.seed)
    train(config, run_dir=run_dir, writer=log, evaluate_test=False)
    rates = [rate for _, rate in log.scalars["train/iterations_per_second"][1:]]
    return statistics.fmean(1 / rate for rate in rates)


def timed_run(config: TrainConfig, run_dir: Path) -> float:
    seed_everything(config.seed)
    started = time.perf_counter()
    train(config, run_dir=run_dir, evaluate_test=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cub", type=Path, default=DEFAULT_CUB, help="a CUB-200-2011 folder (default: ../shared/data/cub50's)")
    parser.add_argument("--per_class", type=int, default=16, help="photos per class and split")
    parser.add_argument("--model", default="tirg")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=20, help="iterations per run (windows of --log_every)")
    parser.add_argument("--log_every", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch's intra-op threads (default: torch's; 1 is faster on a contended machine)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.iters < 2 * args.log_every:
        parser.error("--iters must cover at least two --log_every windows (the first is left out)")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tree = write_birds(work / "birds", args.cub, args.per_class, args.image_size)
        images = len(load_dataset("fashion200k", tree, "train"))
        end_to_end = TrainConfig(
            dataset="fashion200k", dataset_path=str(tree), model=args.model, backbone=args.backbone, image_size=args.image_size,
            batch_size=args.batch_size, num_iters=args.iters, log_every=args.log_every, checkpoint_every=0, device="cpu",
        )  # fmt: skip
        frozen = replace(end_to_end, freeze_backbone=True, feature_cache=str(work / "features"))
        with_extraction = timed_run(replace(frozen, num_iters=0), work / "extract")
        cached = timed_run(replace(frozen, num_iters=0), work / "cached")
        runs: dict[str, list[float]] = {"end_to_end": [], "frozen": []}
        for round_ in range(args.rounds):
            order = ("end_to_end", "frozen") if round_ % 2 == 0 else ("frozen", "end_to_end")
            for name in order:
                config = end_to_end if name == "end_to_end" else frozen
                runs[name].append(seconds_per_iteration(config, work / f"{name}-{round_}"))
    median = {name: statistics.median(values) for name, values in runs.items()}
    extraction = with_extraction - cached
    result = {
        "model": args.model, "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
        "training_images": images, "iterations_per_run": args.iters, "rounds": args.rounds,
        "seconds_per_iteration": {name: [round(v, 4) for v in values] for name, values in runs.items()},
        "median_seconds_per_iteration": {name: round(value, 4) for name, value in median.items()},
        "speedup_frozen_vs_end_to_end": round(median["end_to_end"] / median["frozen"], 1),
        "extraction_s": round(extraction, 2), "extraction_ms_per_image": round(1000 * extraction / images, 1),
        "extraction_in_end_to_end_iterations": round(extraction / median["end_to_end"], 1),
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "frozen.json", json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
