"""Hashing network: ResNet-18 body, Linear(512, bits) and tanh, giving relaxed codes in (-1, 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tirg.models.image import resnet18_encoder


class HashNet(nn.Module):
    """The original's HashModel: a ResNet-18 whose fc is Linear(512, bits), then tanh.

    `weights_path`: torchvision ResNet-18 state dict (the original used ImageNet weights);
    without it the body starts from random initialisation.
    """

    def __init__(self, bits: int, weights_path: str | Path | None = None) -> None:
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits={bits} must be >= 1 (--binary_bits)")
        self.bits = bits
        self.net = resnet18_encoder(embed_dim=bits, weights_path=weights_path)

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
