"""Image encoder: torchvision ResNet-18 with adaptive pooling and a Linear to `embed_dim`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision
from torch import nn

from tirg.errors import CheckpointError

logger = logging.getLogger(__name__)


def resnet18_encoder(embed_dim: int = 512, weights_path: str | Path | None = None) -> torchvision.models.ResNet:
    """ResNet-18 whose average pool is adaptive (any input size) and whose fc maps 512 -> embed_dim.

    `weights_path` is a state dict in torchvision's format (e.g. resnet18-f37072fd.pth).
    Without it the network starts from random init; this is logged once per encoder built.
    """
    model = torchvision.models.resnet18(weights=None)
    if weights_path is None:
        logger.info("image encoder: ResNet-18 from random initialisation (no --backbone-weights given)")
    else:
        weights_path = Path(weights_path)
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"backbone weights not found: {weights_path} (--backbone-weights)") from None
        except Exception as error:  # torch raises several types for a file that is not a state dict
            raise CheckpointError(f"{weights_path} is not a torchvision state dict ({error})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{weights_path} holds a {type(state).__name__}, expected a ResNet-18 state dict")
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith("fc.")]
        if missing or unexpected:
            raise CheckpointError(f"{weights_path} does not match ResNet-18: missing {missing[:5]}, unexpected {unexpected[:5]}")
        logger.info("image encoder: ResNet-18 weights from %s", weights_path)
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.fc = nn.Linear(model.fc.in_features, embed_dim)
    return model


def resnet_feature_map(model: torchvision.models.ResNet, images: torch.Tensor) -> torch.Tensor:
    """The last convolutional map [B, 512, H/32, W/32] (7x7 for 224x224 input), before pooling."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def pool_and_project(model: torchvision.models.ResNet, feature_map: torch.Tensor) -> torch.Tensor:
    """The rest of the encoder after `resnet_feature_map`: average pool, flatten, fc."""
    return model.fc(torch.flatten(model.avgpool(feature_map), 1))
