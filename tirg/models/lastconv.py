"""TIRG on the last convolutional map (`tirg_lastconv`): gating and residual with 3x3 convolutions.

The text feature is tiled over every position of the ResNet's last map (7x7 for 224x224
images), concatenated with it, and two branches (BN, 3x3 conv, ReLU, 3x3 conv) give a gate
and a residual; the modified map is then pooled and projected like any image. Module names
(`a`, `mod2d`, `mod2d_gate`) and layer order follow the original, so its weights map one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from tirg.models.composers import ComposeModel
from tirg.models.image import pool_and_project, resnet_feature_map
from tirg.text import Vocabulary


def tile_text(text_features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, d] -> [B, d, height, width]: the same text vector at every spatial position."""
    return text_features[:, :, None, None].expand(-1, -1, height, width)


def _conv_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
    )


class TIRGLastConv(ComposeModel):
    """a0 * sigmoid(gate(map ++ tiled text)) * map + a1 * residual(map ++ tiled text), then pool and fc.

    Composition needs the source image's spatial map, so evaluation composes from images
    (`composes_pooled_features` is False) instead of from cached pooled features.
    """

    composes_pooled_features = False

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        if options.get("backbone", "resnet18") != "resnet18":
            raise ValueError(f"tirg_lastconv composes on a ResNet's last conv map; --backbone {options['backbone']!r} has none")
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        channels = self.img_model.fc.in_features
        self.a = nn.Parameter(torch.tensor([1.0, 10.0, 1.0, 1.0]))
        self.mod2d = _conv_branch(channels + self.text_embed_dim, channels)
        self.mod2d_gate = _conv_branch(channels + self.text_embed_dim, channels)

    def modify_feature_map(self, feature_map: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        both = torch.cat([feature_map, tile_text(text_features, *feature_map.shape[-2:])], dim=1)
        return self.a[0] * torch.sigmoid(self.mod2d_gate(both)) * feature_map + self.a[1] * self.mod2d(both)

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """`image_features` must be the last conv map [B, C, H, W]; pooled features carry no positions."""
        if image_features.dim() != 4:
            raise ValueError(
                f"tirg_lastconv composes on the last convolutional map [B, C, H, W], got shape {tuple(image_features.shape)};"
                " use compose_img_text(images, texts)"
            )
        return pool_and_project(self.img_model, self.modify_feature_map(image_features, text_features))

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.compose(resnet_feature_map(self.img_model, images), self.extract_text_feature(texts))
