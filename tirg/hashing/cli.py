"""`tirg hash train|eval`: the original main.py's flags (--dataset_name, --binary_bits, --margin, ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tirg.hashing.train import LR_SCHEDULES, OPTIMIZERS, HashTrainConfig
from tirg.runs import new_run_dir, removed_unless_checkpointed

DEFAULT_LOG_DIR = Path("runs") / "hash"

_DEFAULTS = HashTrainConfig()


def add_hash_parser(commands: argparse._SubParsersAction) -> None:
    """Add `hash` with its `train` and `eval` subcommands to the `tirg` parser."""
    hashing = commands.add_parser("hash", help="deep supervised hashing on CUB-200-2011 / Stanford Dogs")
    sub = hashing.add_subparsers(dest="hash_command", required=True)

    train = sub.add_parser("train", help="train the hashing network, then report mAP@all (final and best seen)")
    train.add_argument("--dataset_name", choices=("CUB", "Stanford_Dogs"), default=_DEFAULTS.dataset_name)
    train.add_argument(
        "--dataset_path", "--datapath_CUB", "--datapath_dog", dest="dataset_path", default=_DEFAULTS.dataset_path,
        help="CUB_200_2011 folder, or the folder with Images/ and *_list.mat (the original's --datapath_CUB / --datapath_dog)",
    )  # fmt: skip
    train.add_argument("--binary_bits", type=int, default=_DEFAULTS.binary_bits)
    train.add_argument("--margin", type=float, default=None, help="default: bits / 4 + 4 (8 for 16 bits, 20 for 64)")
    train.add_argument("--lr", type=float, default=_DEFAULTS.lr)
    train.add_argument("--batchSize", "--batch_size", dest="batch_size", type=int, default=_DEFAULTS.batch_size)
    train.add_argument("--classes_per_batch", type=int, default=_DEFAULTS.classes_per_batch, help="classes per batch (the original's numBatchCategory)")
    train.add_argument("--num_epochs", type=int, default=_DEFAULTS.num_epochs)
    train.add_argument("--optimizer_name", choices=OPTIMIZERS, default=_DEFAULTS.optimizer_name)
    train.add_argument("--step_lr", type=int, default=_DEFAULTS.step_lr, help="lr x 0.1 every this many epochs (--lr_schedule step)")
    train.add_argument("--lr_schedule", choices=LR_SCHEDULES, default=_DEFAULTS.lr_schedule, help="step (the original's) or cosine (annealed to 0 over --num_epochs)")
    train.add_argument("--hidden_dim", type=int, default=_DEFAULTS.hidden_dim, help="hash head Linear-ReLU-Linear with this hidden width (0: the original's Linear)")
    train.add_argument("--dropout", type=float, default=_DEFAULTS.dropout, help="dropout before each Linear of the hash head (0: none)")
    train.add_argument("--quantization_weight", type=float, default=_DEFAULTS.quantization_weight)
    train.add_argument("--image_size", type=int, default=_DEFAULTS.image_size)
    train.add_argument("--batches_per_epoch", type=int, default=None, help="default: training images // batch size")
    train.add_argument("--eval_every", type=int, default=_DEFAULTS.eval_every, help="epochs between evaluations")
    train.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    train.add_argument("--device", default=_DEFAULTS.device)
    train.add_argument("--num_workers", type=int, default=_DEFAULTS.num_workers)
    train.add_argument("--backbone", default=_DEFAULTS.backbone, help="resnet18 (the original's), efficientnet_lite0, vit_b_16 or any timm model name")
    train.add_argument("--backbone_weights", default=None, help="a state dict PATH, imagenet (offline for efficientnet_lite0 with the 'pretrained' extra) or none")
    train.add_argument("--freeze_backbone", action="store_true", help="cache backbone features once and train only the hash head")
    train.add_argument("--feature_cache", default=None, help="folder of the frozen backbone's features, reusable across runs (default: in the run folder)")
    train.add_argument("--ngpu", default=None, help="accepted for the original's command line and ignored (use --device)")
    train.add_argument("--out", default=None, help="run folder: absent or empty (default: a new runs/hash/<time>_<dataset>_<bits>bits)")
    train.add_argument("--overwrite", action="store_true", help="replace the hashing run already at --out (nothing else is ever replaced)")

    evaluation = sub.add_parser("eval", help="mAP@all of a hashing checkpoint (test queries vs training database)")
    evaluation.add_argument("--checkpoint", required=True)
    evaluation.add_argument("--dataset_path", default=None, help="default: the checkpoint's")
    evaluation.add_argument("--device", default="cpu")


def run_hash(args: argparse.Namespace) -> int:
    import torch

    from tirg.hashing.data import load_labeled_images
    from tirg.hashing.train import evaluate_model, load_hash_model, train_hashing

    if args.hash_command == "train":
        from tirg.runtime import seed_everything

        names = [n for n in HashTrainConfig.__dataclass_fields__ if hasattr(args, n)]
        config = HashTrainConfig(**{n: getattr(args, n) for n in names})
        seed_everything(config.seed)  # the hash head's dropout draws from torch's global generator, as tirg train's does
        if args.out:
            run_dir = Path(args.out)
            result = train_hashing(config, run_dir, progress=True, overwrite=args.overwrite)
        else:
            run_dir = new_run_dir(DEFAULT_LOG_DIR, f"_{config.dataset_name}_{config.binary_bits}bits")
            with removed_unless_checkpointed(run_dir, ("checkpoint.pth",)):
                result = train_hashing(config, run_dir, progress=True)
        report = {
            "run_dir": str(run_dir),
            "final": result.final.as_dict(),
            "best_map_all_during_training (selected on the test set)": result.best_map_all,
            "best_epoch": result.best_epoch,
        }
    else:
        model, config = load_hash_model(args.checkpoint, args.device)
        path = args.dataset_path or config.dataset_path
        trainset = load_labeled_images(config.dataset_name, path, "train")
        testset = load_labeled_images(config.dataset_name, path, "test")
        evaluation = evaluate_model(model, trainset, testset, config, torch.device(args.device))
        report = {"checkpoint": args.checkpoint, **evaluation.as_dict()}
    print(json.dumps(report, indent=2))
    return 0
