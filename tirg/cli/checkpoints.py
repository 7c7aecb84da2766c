"""`tirg import-checkpoint` and `tirg export-checkpoint`: checkpoints in the layout of google/tirg's main.py."""

from __future__ import annotations

import argparse
import json

from tirg.cli.runner import Runner
from tirg.compat.google_tirg import VOCABULARY_ORDERS
from tirg.config import TrainConfig

_DATASET_OPTION = {"action": "append", "default": [], "metavar": "KEY=VALUE", "help": "loader option, e.g. label_file_order=listdir"}


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    imported = commands.add_parser("import-checkpoint", help="convert a checkpoint saved by google/tirg's main.py")
    imported.add_argument("src", help="the original checkpoint (it, opt, model_state_dict)")
    imported.add_argument("--out", required=True, help="the tirg checkpoint to write")
    imported.add_argument("--dataset", help="default: the checkpoint's opt.dataset (css3d: css_original)")
    imported.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", required=True, help="the training data")
    imported.add_argument("--dataset_option", "--dataset-option", dest="dataset_option", **_DATASET_OPTION)
    imported.add_argument(
        "--vocabulary-order", "--vocabulary_order", dest="vocabulary_order", choices=VOCABULARY_ORDERS, default="first-seen",
        help="word ids as the 2019 code (first-seen; released checkpoints) or the 2021 code (sorted) numbered them",
    )  # fmt: skip
    imported.add_argument("--overwrite", action="store_true")
    exported = commands.add_parser("export-checkpoint", help="write a tirg checkpoint in the layout of google/tirg's main.py")
    exported.add_argument("src", help="a tirg checkpoint or run folder")
    exported.add_argument("--out", required=True)
    exported.add_argument("--vocabulary-order", "--vocabulary_order", dest="vocabulary_order", choices=VOCABULARY_ORDERS, default="sorted")
    exported.add_argument(
        "--dataset_path", "--dataset-path", dest="dataset_path", help="first-seen order: the training data (default: the checkpoint's)"
    )
    exported.add_argument("--dataset_option", "--dataset-option", dest="dataset_option", **_DATASET_OPTION)
    exported.add_argument("--overwrite", action="store_true")
    return {"import-checkpoint": run_import_checkpoint, "export-checkpoint": run_export_checkpoint}


def _dataset_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"--dataset_option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def run_import_checkpoint(args: argparse.Namespace) -> int:
    from tirg.compat.google_tirg import import_checkpoint

    checkpoint = import_checkpoint(
        args.src, args.out, args.dataset_path, args.vocabulary_order, args.dataset,
        _dataset_options(args.dataset_option), overwrite=args.overwrite,
    )  # fmt: skip
    summary = {"out": args.out, "model": checkpoint["model_name"], "iteration": checkpoint["iteration"]}
    print(json.dumps({**summary, "vocabulary": len(checkpoint["vocabulary"]), "vocabulary_order": args.vocabulary_order}, indent=2))
    return 0


def run_export_checkpoint(args: argparse.Namespace) -> int:
    from tirg.checkpoint import checkpoint_file, load_checkpoint
    from tirg.compat.google_tirg import export_checkpoint, training_texts

    src = checkpoint_file(args.src)
    texts = None
    if args.vocabulary_order == "first-seen":
        config = TrainConfig.from_dict(load_checkpoint(src)["config"])
        texts = training_texts(config.dataset, args.dataset_path or config.dataset_path, _dataset_options(args.dataset_option))
    export_checkpoint(src, args.out, args.vocabulary_order, texts, overwrite=args.overwrite)
    print(json.dumps({"out": args.out, "vocabulary_order": args.vocabulary_order}, indent=2))
    return 0
