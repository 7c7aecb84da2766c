"""Hashing network: an image backbone (ResNet-18 by default), a hash layer (Linear, or a small MLP) and tanh: relaxed codes in (-1, 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tirg.models.backbones import Preprocessing
from tirg.models.image import backbone_features, build_image_encoder, encoder_preprocessing


def hash_layer(in_features: int, bits: int, hidden_dim: int = 0, dropout: float = 0.0) -> nn.Module:
    """The hash head before tanh: the original's Linear(in_features, bits) when hidden_dim and dropout are 0,
    else Dropout, Linear(in_features, hidden_dim), ReLU, Dropout, Linear(hidden_dim, bits) (without the
    hidden layer: Dropout, Linear): the fc-relu-fc head that DNNH/DPSH-style hashing puts on frozen CNN features.
    """
    if not hidden_dim and not dropout:
        return nn.Linear(in_features, bits)  # the original's head, under the original's state-dict names
    widths = [in_features, hidden_dim, bits] if hidden_dim else [in_features, bits]
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
        layers += [nn.ReLU()] if i else []
        layers += [nn.Dropout(dropout), nn.Linear(width_in, width_out)]
    return nn.Sequential(*layers)


class HashNet(nn.Module):
    """The original's HashModel: a backbone whose fc is the hash layer (by default Linear(features, bits)), then tanh.

    `backbone`: 'resnet18' (the original's), 'vit_b_16' or a timm model name. `weights_path`:
    a state dict path, 'imagenet' (the original used ImageNet weights) or None (random init).
    `hidden_dim`, `dropout`: see hash_layer. The hash head is `net.fc`; `head(backbone_features(x))`
    equals `forward(x)`, which lets a frozen backbone's features be computed once and only the head be trained.
    """

    def __init__(
        self, bits: int, weights_path: str | Path | None = None, backbone: str = "resnet18", hidden_dim: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits={bits} must be >= 1 (--binary_bits)")
        self.bits = bits
        self.backbone = backbone
        self.net = build_image_encoder(backbone, embed_dim=bits, weights_path=weights_path)
        if hidden_dim or dropout:
            self.net.fc = hash_layer(self.net.fc.in_features, bits, hidden_dim, dropout)

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
