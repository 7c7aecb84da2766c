"""Image encoders: torchvision ResNet-18 (TIRG's) or ViT-B/16 (MQIRTN's), each ending in a Linear `fc` to `embed_dim`.

Every encoder maps images [B, 3, H, W] to features [B, embed_dim] and exposes its last Linear
as `fc`, which the optimizer trains at the full learning rate while the body may go slower.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.vision_transformer import interpolate_embeddings

from tirg.errors import CheckpointError

logger = logging.getLogger(__name__)

BACKBONES = ("resnet18", "vit_b_16")


def _load_state_dict(weights_path: str | Path, what: str) -> dict[str, torch.Tensor]:
    weights_path = Path(weights_path)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"backbone weights not found: {weights_path} (--backbone-weights)") from None
    except Exception as error:  # torch raises several types for a file that is not a state dict
        raise CheckpointError(f"{weights_path} is not a torchvision state dict ({error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights_path} holds a {type(state).__name__}, expected a {what} state dict")
    return state


def _load_body(model: nn.Module, state: dict[str, torch.Tensor], head: str, weights_path: str | Path, what: str) -> None:
    """Load all but the classifier `head`, which the encoder replaces."""
    state = {key: value for key, value in state.items() if not key.startswith(head)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.startswith(head)]
    if missing or unexpected:
        raise CheckpointError(f"{weights_path} does not match {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    logger.info("image encoder: %s weights from %s", what, weights_path)


def resnet18_encoder(embed_dim: int = 512, weights_path: str | Path | None = None) -> torchvision.models.ResNet:
    """ResNet-18 whose average pool is adaptive (any input size) and whose fc maps 512 -> embed_dim.

    `weights_path` is a state dict in torchvision's format (e.g. resnet18-f37072fd.pth).
    Without it the network starts from random init; this is logged once per encoder built.
    """
    model = torchvision.models.resnet18(weights=None)
    if weights_path is None:
        logger.info("image encoder: ResNet-18 from random initialisation (no --backbone-weights given)")
    else:
        _load_body(model, _load_state_dict(weights_path, "ResNet-18"), "fc.", weights_path, "ResNet-18")
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


class ViTEncoder(nn.Module):
    """torchvision VisionTransformer without its classifier, class token -> Linear `fc` -> embed_dim.

    A ViT's position embeddings fix its input size; images of another size are resized to
    `image_size` (bilinear), so the same data pipeline serves both backbones.
    """

    def __init__(self, body: torchvision.models.VisionTransformer, embed_dim: int):
        super().__init__()
        body.heads = nn.Identity()
        self.body = body
        self.image_size = body.image_size
        self.fc = nn.Linear(body.hidden_dim, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.fc(self.body(images))


def vit_b_16_encoder(embed_dim: int = 512, weights_path: str | Path | None = None, image_size: int = 224) -> ViTEncoder:
    """ViT-B/16 (patch 16, 768-d) for `image_size` inputs; ImageNet weights (224) are interpolated to other sizes."""
    if image_size % 16:
        raise ValueError(f"vit_b_16 needs an image size divisible by its patch size 16, got --image_size {image_size}")
    body = torchvision.models.vit_b_16(weights=None, image_size=image_size)
    if weights_path is None:
        logger.info("image encoder: ViT-B/16 from random initialisation (no --backbone-weights given)")
    else:
        state = _load_state_dict(weights_path, "ViT-B/16")
        if "encoder.pos_embedding" in state and state["encoder.pos_embedding"].shape != body.encoder.pos_embedding.shape:
            state = interpolate_embeddings(image_size, 16, state)
        _load_body(body, state, "heads.", weights_path, "ViT-B/16")
    return ViTEncoder(body, embed_dim)


def build_image_encoder(
    backbone: str = "resnet18", embed_dim: int = 512, weights_path: str | Path | None = None, image_size: int | None = None
) -> nn.Module:
    """`backbone` is 'resnet18' (any input size) or 'vit_b_16' (built for `image_size`, default 224)."""
    if backbone == "resnet18":
        return resnet18_encoder(embed_dim, weights_path)
    if backbone == "vit_b_16":
        return vit_b_16_encoder(embed_dim, weights_path, image_size or 224)
    raise ValueError(f"unknown backbone {backbone!r} (--backbone); choose from {list(BACKBONES)}")
