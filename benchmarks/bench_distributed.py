"""Training throughput of `tirg train` on CSS: 1 and 2 processes (torchrun), with and without --amp,
--channels_last and --cache_images, and how far the 2-process weights are from the 1-process ones.

Each run is its own `torchrun --standalone --nproc_per_node=N` launch of this script in worker mode,
which calls `tirg.training.train` and times its iterations from the iterations/s it logs, leaving out
the first logging window (start-up, first-touch allocations). images/s counts the source and target
image of every pair: 2 x batch_size per iteration. The weights after the last iteration of every
N-process run are compared with the 1-process run of the same variant (max |difference|).

    python benchmarks/bench_distributed.py                      # CPU: 1 and 2 processes, gloo
    python benchmarks/bench_distributed.py --device cuda --nprocs 1 --variants plain amp channels_last cache_images all
    bash benchmarks/device_check.sh                             # the GPU figures, in under 5 minutes

Writes distributed.json and distributed.md under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from tirg import distributed
from tirg.config import TrainConfig
from tirg.data import CSSGeneratorConfig, generate_css
from tirg.runtime import seed_everything
from tirg.training import train

# The options each variant turns on.
VARIANTS = {
    "plain": {},
    "amp": {"amp": True},
    "channels_last": {"channels_last": True},
    "cache_images": {"cache_images": True},
    "all": {"amp": True, "channels_last": True, "cache_images": True},
}
PAPER_CSS_ITERATIONS = 160_000


class RateRecorder:
    """The writer `train` logs to: keeps its iterations/s, one value per logging window."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def add_scalar(self, name: str, value: float, step: int) -> None:
        if name == "train/iterations_per_second":
            self.rates.append(value)


def worker(args: argparse.Namespace) -> None:
    """One training run in this process (one of torchrun's ranks); rank 0 writes the timing as JSON."""
    distributed.init_from_environment(args.device)
    config = TrainConfig(
        dataset="css", dataset_path=str(args.data), model="tirg", embed_dim=args.embed_dim, batch_size=args.batch_size,
        image_size=args.image_size, num_iters=args.iters, log_every=args.log_every, checkpoint_every=0,
        device=args.device, loader_num_workers=args.workers, **VARIANTS[args.variant],
    )  # fmt: skip
    seed_everything(config.seed)
    recorder = RateRecorder()
    result = train(config, run_dir=args.run_dir, writer=recorder, evaluate_test=False)
    if distributed.is_main():
        rates = recorder.rates[1:] or recorder.rates  # the first window holds the start-up
        seconds = sum(1 / rate for rate in rates) / len(rates)
        row = {"variant": args.variant, "processes": distributed.world_size(), "device": args.device, "s_per_iteration": seconds}
        row.update(images_per_second=2 * args.batch_size / seconds, checkpoint=str(result.checkpoint))
        args.result.write_text(json.dumps(row))
    distributed.shutdown()


def launch(args: argparse.Namespace, variant: str, processes: int, work: Path) -> dict:
    run_dir = work / f"{variant}_{processes}"
    result = work / f"{variant}_{processes}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", __file__, "--worker"]
    command += ["--variant", variant, "--run_dir", str(run_dir), "--result", str(result), "--data", str(args.data)]
    for name in ("iters", "log_every", "batch_size", "image_size", "embed_dim", "device", "workers"):
        command += [f"--{name}", str(getattr(args, name))]
    # Each process gets an equal share of the cores (torchrun alone would give it one thread).
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(command, check=True, env=env)
    return json.loads(result.read_text())


def weight_difference(first: str, second: str) -> float:
    a = torch.load(first, map_location="cpu", weights_only=True)["model"]
    b = torch.load(second, map_location="cpu", weights_only=True)["model"]
    return max(float((a[name].double() - b[name].double()).abs().max()) for name in a if a[name].is_floating_point())


def table(rows: list[dict]) -> str:
    lines = [
        "| variant | processes | device | s / iteration | images / s | 160k iterations (h) | max weight difference to 1 process |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        difference = "—" if row["weight_difference"] is None else f"{row['weight_difference']:.2e}"
        hours = row["s_per_iteration"] * PAPER_CSS_ITERATIONS / 3600
        lines.append(
            f"| {row['variant']} | {row['processes']} | {row['device']} | {row['s_per_iteration']:.3f} | "
            f"{row['images_per_second']:.1f} | {hours:.1f} | {difference} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a CSS data set (default: generated under --out)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="processes per run; the first is the reference")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["plain", "amp", "cache_images"])
    parser.add_argument("--iters", type=int, default=24)
    parser.add_argument("--log_every", type=int, default=4, help="iterations per timing window (the first window is left out)")
    parser.add_argument("--batch_size", type=int, default=32, help="the global batch (TIRG's)")
    parser.add_argument("--image_size", type=int, default=64, help="the CSS renders' own size")
    parser.add_argument("--embed_dim", type=int, default=512)
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes per training process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--run_dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        args.data = args.out / "css_bench"
        if not args.data.is_dir():
            generate_css(args.data, CSSGeneratorConfig(seed=0, n_train=2000, n_test=100))
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out) as work:
        for variant in args.variants:
            reference = None
            for processes in args.nprocs:
                row = launch(args, variant, processes, Path(work))
                reference = reference or row["checkpoint"]
                row["weight_difference"] = None if row["checkpoint"] == reference else weight_difference(reference, row["checkpoint"])
                del row["checkpoint"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    settings = {name: getattr(args, name) for name in ("iters", "log_every", "batch_size", "image_size", "embed_dim", "workers")}
    (args.out / "distributed.json").write_text(json.dumps({"settings": settings, "cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    (args.out / "distributed.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
