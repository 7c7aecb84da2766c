"""`tirg hash train|eval`: the original main.py's flags (--dataset_name, --binary_bits, --margin, ...)."""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tirg.cli.flags import add_config_flags
from tirg.cli.runner import Runner
from tirg.hashing.train import LR_SCHEDULES, OPTIMIZERS, HashTrainConfig
from tirg.runs import hash_run_name, new_run_dir, removed_unless_checkpointed

DEFAULT_LOG_DIR = Path("runs") / "hash"

FLAG_HELP = {
    "dataset_path": "CUB_200_2011 folder, or the folder with Images/ and *_list.mat (the original's --datapath_CUB / --datapath_dog)",
    "margin": "None: bits / 4 + 4 (8 for 16 bits, 20 for 64)",
    "classes_per_batch": "classes per batch (the original's numBatchCategory)",
    "step_lr": "lr x 0.1 every this many epochs (--lr_schedule step)",
    "lr_schedule": "step (the original's) or cosine (annealed to 0 over --num_epochs)",
    "hidden_dim": "hash head Linear-ReLU-Linear with this hidden width (0: the original's Linear)",
    "dropout": "dropout before each Linear of the hash head (0: none)",
    "batches_per_epoch": "None: training images // batch size",
    "eval_every": "epochs between evaluations",
    "backbone": "resnet18 (the original's), efficientnet_lite0, vit_b_16 or any timm model name",
    "backbone_weights": "a state dict PATH, imagenet (offline for efficientnet_lite0 with the 'pretrained' extra) or none",
    "freeze_backbone": "cache backbone features once and train only the hash head",
    "feature_cache": "folder of the frozen backbone's features, reusable across runs (None: in the run folder)",
}


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    """Add `hash` with its `train` and `eval` subcommands to the `tirg` parser."""
    hashing = commands.add_parser("hash", help="deep supervised hashing on CUB-200-2011 / Stanford Dogs")
    sub = hashing.add_subparsers(dest="hash_command", required=True)

    train = sub.add_parser("train", help="train the hashing network, then report mAP@all (final and best seen)")
    add_config_flags(
        train,
        HashTrainConfig,
        aliases={"dataset_path": ("--datapath_CUB", "--datapath_dog"), "batch_size": ("--batchSize",)},
        choices={"dataset_name": ("CUB", "Stanford_Dogs"), "optimizer_name": OPTIMIZERS, "lr_schedule": LR_SCHEDULES},
        help_text=FLAG_HELP,
        hyphen_aliases=False,  # main.py routes a seed's line by its flags; hyphen spellings are `tirg train`'s alone
    )
    train.add_argument("--ngpu", default=None, help="accepted for the original's command line and ignored (use --device)")
    train.add_argument("--out", default=None, help="run folder: absent or empty (default: a new runs/hash/<time>_<dataset>_<bits>bits)")
    train.add_argument("--overwrite", action="store_true", help="replace the hashing run already at --out (nothing else is ever replaced)")

    evaluation = sub.add_parser("eval", help="mAP@all of a hashing checkpoint (test queries vs training database)")
    evaluation.add_argument("--checkpoint", required=True)
    evaluation.add_argument("--dataset_path", default=None, help="default: the checkpoint's")
    evaluation.add_argument("--device", default="cpu")
    return {"hash": run_hash}


def run_hash(args: argparse.Namespace) -> int:
    report = _train(args) if args.hash_command == "train" else _evaluate(args)
    if report is not None:
        print(json.dumps(report, indent=2))
    return 0


def _train(args: argparse.Namespace) -> dict[str, Any] | None:
    """Train and return the report; None on the processes other than rank 0 under torchrun."""
    from tirg import distributed
    from tirg.hashing.train import train_hashing
    from tirg.runtime import seed_everything

    # Flags not given are absent from args, so the config's own defaults apply.
    names = [n for n in HashTrainConfig.__dataclass_fields__ if hasattr(args, n)]
    config = HashTrainConfig(**{n: getattr(args, n) for n in names})
    # Under torchrun every process runs this; rank 0 alone creates the run folder and writes in it.
    # The hash head's dropout draws from torch's global generator, as tirg train's does.
    seed_everything(config.seed)
    distributed.init_from_environment(config.device)
    try:
        main = distributed.is_main()
        if args.out:
            run_dir = Path(args.out)
            result = train_hashing(config, run_dir, progress=main, overwrite=args.overwrite)
        else:
            name = hash_run_name(config.dataset_name, config.binary_bits)
            run_dir = distributed.from_main(lambda: new_run_dir(DEFAULT_LOG_DIR, f"_{name}"))
            with removed_unless_checkpointed(run_dir, ("checkpoint.pth",)) if main else nullcontext():
                result = train_hashing(config, run_dir, progress=main)
    finally:
        distributed.shutdown()
    if not main:
        return None
    return {
        "run_dir": str(run_dir),
        "final": result.final.as_dict(),
        "best_map_all_during_training (selected on the test set)": result.best_map_all,
        "best_epoch": result.best_epoch,
    }


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from tirg.hashing.data import load_labeled_images
    from tirg.hashing.train import evaluate_model, load_hash_model

    model, config = load_hash_model(args.checkpoint, args.device)
    path = args.dataset_path or config.dataset_path
    trainset = load_labeled_images(config.dataset_name, path, "train")
    testset = load_labeled_images(config.dataset_name, path, "test")
    evaluation = evaluate_model(model, trainset, testset, config, torch.device(args.device))
    return {"checkpoint": args.checkpoint, **evaluation.as_dict()}
