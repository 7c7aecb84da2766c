"""TIRG and its baselines: image and text encoders plus a composer of their features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from tirg.losses import NormalizationLayer, compute_loss
from tirg.models.image import resnet18_encoder
from tirg.text import TextLSTMEncoder, Vocabulary


class ComposeModel(nn.Module):
    """Base class. Subclasses implement `compose(image_features, text_features)`.

    The public names `extract_img_feature`, `extract_text_feature` and `compose_img_text`
    are TIRG's, kept for users who know them. Where `composes_pooled_features` is True,
    composing a query from its source image's cached `extract_img_feature` output equals
    `compose_img_text` on the image, so evaluation embeds each image once.
    """

    composes_pooled_features = True

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None):
        super().__init__()
        self.embed_dim = embed_dim
        self.img_model = resnet18_encoder(embed_dim, backbone_weights)
        self.text_model = TextLSTMEncoder(vocabulary, out_dim=embed_dim)
        self.normalization_layer = NormalizationLayer(initial_scale=4.0, learn_scale=True)

    @property
    def vocabulary(self) -> Vocabulary:
        return self.text_model.vocabulary

    def extract_img_feature(self, images: torch.Tensor) -> torch.Tensor:
        return self.img_model(images)

    def extract_text_feature(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_model(texts)

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.compose(self.extract_img_feature(images), self.extract_text_feature(texts))

    def compute_loss(
        self, source_images: torch.Tensor, texts: Sequence[str], target_images: torch.Tensor, loss: str, generator: torch.Generator
    ) -> torch.Tensor:
        composed = self.normalization_layer(self.compose_img_text(source_images, texts))
        targets = self.normalization_layer(self.extract_img_feature(target_images))
        return compute_loss(loss, composed, targets, generator)


class ImageOnly(ComposeModel):
    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return image_features

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.extract_img_feature(images)


class TextOnly(ComposeModel):
    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return text_features

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.extract_text_feature(texts)


class Concat(ComposeModel):
    """concat(img, text) -> BN, ReLU, Linear(2d, 2d), BN, ReLU, Dropout(0.1), Linear(2d, d)."""

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None):
        super().__init__(vocabulary, embed_dim, backbone_weights)
        width = 2 * embed_dim
        self.composer = nn.Sequential(
            nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width),
            nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, embed_dim),
        )  # fmt: skip

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return self.composer(torch.cat([image_features, text_features], dim=1))


class TIRG(ComposeModel):
    """Text-image residual gating: a0 * sigmoid(gate) * img + a1 * residual, a initialised to [1, 10, 1, 1].

    Only a0 and a1 are used; the vector keeps four entries so the parameter matches the original.
    """

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None):
        super().__init__(vocabulary, embed_dim, backbone_weights)
        width = 2 * embed_dim
        self.a = nn.Parameter(torch.tensor([1.0, 10.0, 1.0, 1.0]))
        self.gated_feature_composer = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, embed_dim))
        self.res_info_composer = nn.Sequential(
            nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, embed_dim)
        )

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        both = torch.cat([image_features, text_features], dim=1)
        gate = torch.sigmoid(self.gated_feature_composer(both))
        return self.a[0] * gate * image_features + self.a[1] * self.res_info_composer(both)
