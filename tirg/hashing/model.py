"""Hashing network: an image backbone (ResNet-18 by default), Linear(features, bits) and tanh: relaxed codes in (-1, 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tirg.models.backbones import Preprocessing
from tirg.models.image import backbone_features, build_image_encoder, encoder_preprocessing


class HashNet(nn.Module):
    """The original's HashModel: a backbone whose fc is Linear(features, bits), then tanh.

    `backbone`: 'resnet18' (the original's), 'vit_b_16' or a timm model name. `weights_path`:
    a state dict path, 'imagenet' (the original used ImageNet weights) or None (random init).
    The hash head is `net.fc`; `head(backbone_features(x))` equals `forward(x)`, which lets a
    frozen backbone's features be computed once and only the head be trained.
    """

    def __init__(self, bits: int, weights_path: str | Path | None = None, backbone: str = "resnet18") -> None:
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits={bits} must be >= 1 (--binary_bits)")
        self.bits = bits
        self.backbone = backbone
        self.net = build_image_encoder(backbone, embed_dim=bits, weights_path=weights_path)

    @property
    def preprocessing(self) -> Preprocessing:
        return encoder_preprocessing(self.net)

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [B, D] (the hash head's input)."""
        return backbone_features(self.net, images)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Relaxed codes from backbone features."""
        return torch.tanh(self.net.fc(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(images))


class HashHead(nn.Module):
    """A hash layer on precomputed features (composed retrieval): Linear(dim, bits, no bias) and tanh.

    Linear and without offset, so sign(head(x)) is a sign projection on learned hyperplanes
    through the origin: exactly random-hyperplane LSH's hash with the planes learned, which
    lets the two run through the same index at the same number of bits.
    """

    def __init__(self, dim: int, bits: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, bits, bias=False)

    @property
    def planes(self) -> np.ndarray:
        """float32 [bits, dim]: the hyperplane normals (sign codes do not depend on the tanh)."""
        return self.linear.weight.detach().cpu().numpy().astype(np.float32)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(features))
