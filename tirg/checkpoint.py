"""Self-describing checkpoints: model and optimizer state, iteration, config, vocabulary, text encoder.

They load with `torch.load(weights_only=True)` and are written atomically (temporary file in
the same folder, then rename), so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tirg.data import default_image_size
from tirg.errors import CheckpointError
from tirg.fileio import atomic_write
from tirg.models import ComposeModel, build_model, canonical_model_name
from tirg.models.backbones import FROM_CHECKPOINT
from tirg.models.image import preprocessing_record
from tirg.text import Vocabulary

FORMAT = "tirg-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "iteration", "model_name", "model", "config", "vocabulary")
CHECKPOINT_NAME = "latest_checkpoint.pth"  # in a run folder


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint path, or a run folder standing for its latest checkpoint."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def make_checkpoint(
    model: ComposeModel,
    model_name: str,
    config: dict[str, Any],
    iteration: int,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: dict[str, float] | None = None,
    early_stopping: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "iteration": iteration,
        "model_name": model_name,
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "config": config,
        "vocabulary": list(model.vocabulary.tokens),
        # What rebuilds the text side: 'lstm', 'minilm' or a model folder, and the feature size it gives.
        "text_encoder": model.text_encoder_name,
        "text_embed_dim": model.text_embed_dim,
        # Input size, interpolation, crop and statistics of the images, and what the backbone's weights expect.
        "preprocessing": preprocessing_record(model.img_model, trained_image_size(config)),
        "metrics": metrics or {},
        "early_stopping": early_stopping or {},  # best validation loss so far and the points since
        # Dropout draws from torch's global generators; resuming restores them (see restore_rng_state).
        "torch_rng_state": torch.get_rng_state(),
        "cuda_rng_states": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def trained_image_size(config: dict[str, Any]) -> int | None:
    """The image size a run's config trained at: its --image_size, else its data set's default (None: stored size)."""
    return config["image_size"] if config.get("image_size") is not None else default_image_size(config.get("dataset", "css"))


def restore_rng_state(checkpoint: dict[str, Any]) -> None:
    """Set torch's global CPU generator, and each CUDA device's, to the states `checkpoint` saved.

    A checkpoint saved without CUDA restores only the CPU state; one saved with more devices than
    this machine has restores the devices both have.
    """
    torch.set_rng_state(checkpoint["torch_rng_state"])
    saved = checkpoint.get("cuda_rng_states", [])
    if saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved[: torch.cuda.device_count()])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, ...: torch raises many types
        raise CheckpointError(f"{path} is not a readable tirg checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tirg checkpoint (no 'format': {FORMAT!r}); original TIRG files need importing first")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}")
    return checkpoint


def check_compatible(checkpoint: dict[str, Any], path: str | Path, model_name: str, vocabulary: Vocabulary) -> None:
    """Refuse a checkpoint whose model type or vocabulary differs from the ones asked for."""
    if canonical_model_name(checkpoint["model_name"]) != canonical_model_name(model_name):
        raise CheckpointError(f"{path} holds a {checkpoint['model_name']!r} model, but {model_name!r} was asked for (--model)")
    saved = checkpoint["vocabulary"]
    if saved != vocabulary.tokens:
        differing = sorted(set(saved) ^ set(vocabulary.tokens))[:5]
        raise CheckpointError(
            f"{path} was trained with a vocabulary of {len(saved)} tokens, the current one has {len(vocabulary)}"
            f" (first differing tokens: {differing}); use the checkpoint's own vocabulary"
        )


def check_text_encoder(checkpoint: dict[str, Any], path: str | Path, model: ComposeModel) -> None:
    """Refuse weights trained on text features of another size than `model`'s text encoder gives.

    Checkpoints from before text encoders were recorded hold the LSTM, whose size is `embed_dim`.
    """
    saved_name = checkpoint.get("text_encoder", "lstm")
    saved_dim = int(checkpoint.get("text_embed_dim", checkpoint["config"].get("embed_dim", model.text_embed_dim)))
    if saved_dim != model.text_embed_dim:
        raise CheckpointError(
            f"{path} was trained with {saved_dim}-d text features (text encoder {saved_name!r}), but the text encoder"
            f" {model.text_encoder_name!r} gives {model.text_embed_dim}-d features (--text_encoder)"
        )


def load_model(
    path: str | Path, device: str | torch.device = "cpu", text_encoder: str | None = None
) -> tuple[ComposeModel, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, with its weights; returns (model in eval mode, checkpoint).

    `text_encoder` overrides the recorded one (e.g. the same pretrained model in another folder).
    """
    checkpoint = load_checkpoint(path)
    config = checkpoint["config"]
    model = build_model(
        checkpoint["model_name"], Vocabulary(checkpoint["vocabulary"]), int(config["embed_dim"]), FROM_CHECKPOINT,
        text_encoder=text_encoder or checkpoint.get("text_encoder", "lstm"),
        backbone=config.get("backbone", "resnet18"), image_size=config.get("image_size"),
        text_cache_dir=config.get("text_embedding_cache"),
    )  # fmt: skip
    check_text_encoder(checkpoint, path, model)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit a {checkpoint['model_name']!r} model: {error}") from None
    return model.to(device).eval(), checkpoint
