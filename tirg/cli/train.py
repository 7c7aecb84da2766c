"""`tirg train` (TIRG's original `main.py` flag names: `--dataset`, `--num_iters`, ...) and `tirg eval`."""

from __future__ import annotations

import argparse
import json
import logging
from contextlib import nullcontext
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from tirg.cli.flags import add_config_flags, flag_kwargs
from tirg.cli.runner import Runner
from tirg.config import TrainConfig

if TYPE_CHECKING:
    from tirg.training import TrainResult

# The flags `tirg train --resume` accepts: where and how fast the run continues, and how long.
RESUME_FLAGS = ("device", "loader_num_workers", "cache_images", "channels_last", "num_iters")


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    _add_train_flags(commands.add_parser("train", help="train a composition model (TIRG's main.py flags)"))
    evaluation = commands.add_parser("eval", help="recall@k of a checkpoint on a test split")
    evaluation.add_argument("--checkpoint", required=True)
    evaluation.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", help="default: the checkpoint's")
    evaluation.add_argument("--split", default="test")
    evaluation.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=64)
    evaluation.add_argument("--device", default="auto")
    return {"train": run_train, "eval": run_eval}


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed by its annotation. A flag not given is absent from the parsed
    namespace (SUPPRESS), so `--resume` can tell a flag given with its default value from one not given."""
    add_config_flags(parser, TrainConfig)
    parser.add_argument(
        "--resume",
        help="checkpoint or run folder to continue exactly where it stopped, under its saved settings"
        f" (only {', '.join('--' + name for name in RESUME_FLAGS)} may be given with it)",
    )
    parser.add_argument(
        "--use_bert", "--use-bert", dest="use_bert", default=argparse.SUPPRESS, **flag_kwargs(bool, "--use_bert"),
        help="ComposeAE's flag: pretrained sentence features, here all-MiniLM-L6-v2 (same as --text_encoder minilm)",
    )  # fmt: skip


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the flags given over TrainConfig's defaults, or with --resume the run's saved ones."""
    from tirg.training_setup import resume_config

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    use_bert = getattr(args, "use_bert", None)
    if not args.resume:
        if use_bert and given.get("text_encoder", "lstm") == "lstm":
            given["text_encoder"] = "minilm"
        return TrainConfig(**given)
    # The run continues under its own saved settings; only where it runs and how long may change.
    refused = sorted(name for name in given if name not in RESUME_FLAGS) + (["use_bert"] if use_bert is not None else [])
    if refused:
        flags = ", ".join(f"--{name}" for name in refused)
        raise ValueError(
            f"--resume continues {args.resume} under its saved settings; {flags} cannot change"
            f" (only {', '.join('--' + name for name in RESUME_FLAGS)} may be given with --resume)"
        )
    config = resume_config(args.resume, given.get("num_iters"))
    for name in RESUME_FLAGS:
        if name in given:
            setattr(config, name, given[name])
    return config


def run_train(args: argparse.Namespace) -> int:
    from tensorboardX import SummaryWriter

    from tirg import distributed
    from tirg.checkpoint import CHECKPOINT_NAME, checkpoint_file
    from tirg.early_stopping import BEST_CHECKPOINT_NAME
    from tirg.runs import new_run_dir, removed_unless_checkpointed
    from tirg.runtime import seed_everything
    from tirg.training import train

    config = train_config(args)
    # Under torchrun every process runs this; rank 0 alone creates the run folder and writes in it.
    distributed.init_from_environment(config.device)
    try:
        main = distributed.is_main()
        if not main:
            logging.getLogger().setLevel(logging.WARNING)  # one log of the run: rank 0's
        run_dir = (
            checkpoint_file(args.resume).parent
            if args.resume
            else distributed.from_main(lambda: new_run_dir(config.log_dir, config.comment))
        )
        seed_everything(config.seed)
        # A new run's folder (and the TensorBoard events file in it) goes when the run fails before its first checkpoint.
        keep = removed_unless_checkpointed(run_dir, (CHECKPOINT_NAME, BEST_CHECKPOINT_NAME)) if main and not args.resume else nullcontext()
        with keep, SummaryWriter(str(run_dir)) if main else nullcontext() as writer:
            result = train(config, run_dir=run_dir, resume=args.resume, writer=writer, progress=main)
    finally:
        distributed.shutdown()
    if main:
        print(json.dumps(_train_summary(result), indent=2))
    return 0


def _train_summary(result: TrainResult) -> dict[str, Any]:
    """What `tirg train` prints: the run folder, the last iteration and its metrics, and early stopping's best."""
    summary = {"run_dir": str(result.run_dir), "iteration": result.iteration, **result.metrics}
    if result.best_checkpoint is not None:
        summary.update(
            best_checkpoint=str(result.best_checkpoint), best_iteration=result.best_iteration, best_val_loss=result.best_val_loss
        )
        summary["stopped_early"] = result.stopped_early
    return summary


def run_eval(args: argparse.Namespace) -> int:
    from tirg.checkpoint import load_model
    from tirg.config import with_query_texts
    from tirg.data import image_transform, load_dataset
    from tirg.evaluate import evaluate
    from tirg.runtime import resolve_device

    device = resolve_device(args.device)
    model, checkpoint = load_model(args.checkpoint, device)
    config = TrainConfig.from_dict(checkpoint["config"])
    dataset = with_query_texts(
        config, load_dataset(config.dataset, args.dataset_path or config.dataset_path, args.split, **config.dataset_options())
    )
    metrics = evaluate(
        model, dataset, image_transform(config.resolved_image_size()), batch_size=args.batch_size, device=device, progress=True
    )
    print(json.dumps({"checkpoint": args.checkpoint, "iteration": checkpoint["iteration"], **metrics}, indent=2))
    return 0
