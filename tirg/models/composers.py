"""TIRG and its baselines: image and text encoders plus a composer of their features."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from tirg.losses import BASE_LOSS, DEFAULT_LOSS_WEIGHTS, Gather, NormalizationLayer, compute_loss, weighted_loss
from tirg.models.image import build_image_encoder
from tirg.text import TextLSTMEncoder, Vocabulary
from tirg.text_encoders import LSTM, SentenceEncoder, build_text_encoder


class ComposeModel(nn.Module):
    """Base class. Subclasses implement `compose(image_features, text_features)`.

    The public names `extract_img_feature`, `extract_text_feature` and `compose_img_text`
    are TIRG's, kept for users who know them. Where `composes_pooled_features` is True,
    composing a query from its source image's cached `extract_img_feature` output equals
    `compose_img_text` on the image, so evaluation embeds each image once.
    """

    composes_pooled_features = True

    def __init__(
        self,
        vocabulary: Vocabulary,
        embed_dim: int = 512,
        backbone_weights: str | Path | None = None,
        *,
        text_encoder: str | nn.Module = LSTM,
        backbone: str = "resnet18",
        image_size: int | None = None,
        text_cache_dir: str | Path | None = None,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.img_model = build_image_encoder(backbone, embed_dim, backbone_weights, image_size)
        self.text_model = build_text_encoder(text_encoder, vocabulary, embed_dim, text_cache_dir)
        self.text_embed_dim: int = self.text_model.out_dim
        self.normalization_layer = NormalizationLayer(initial_scale=4.0, learn_scale=True)
        # Kept whatever the text encoder, so every checkpoint has the same keys.
        self._vocabulary = vocabulary

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, vocabulary: Vocabulary) -> None:
        """Swap in another vocabulary of the same size (the importer's rebuilt word order)."""
        if len(vocabulary) != len(self._vocabulary):
            raise ValueError(f"a vocabulary of {len(vocabulary)} tokens cannot replace one of {len(self._vocabulary)}")
        self._vocabulary = vocabulary
        if isinstance(self.text_model, TextLSTMEncoder):
            self.text_model.vocabulary = vocabulary

    @property
    def text_encoder_name(self) -> str:
        return self.text_model.name

    def prepare_texts(self, texts: Iterable[str]) -> None:
        """Encode a frozen encoder's strings ahead, in one deterministic pass; the LSTM needs nothing."""
        if isinstance(self.text_model, SentenceEncoder):
            self.text_model.prepare(texts)

    def extract_img_feature(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, embed_dim] of images [B, 3, H, W], or of the backbone's pooled features [B, D]
        (a frozen backbone's cache, see tirg.frozen_backbone), of which only the final projection `fc` is left
        to run. An image model without `fc` (a stand-in such as nn.Identity) gets its input as it is."""
        if images.dim() == 2 and hasattr(self.img_model, "fc"):
            return self.img_model.fc(images)
        return self.img_model(images)

    def extract_text_feature(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_model(texts)

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.compose(self.extract_img_feature(images), self.extract_text_feature(texts))

    def compute_loss_terms(
        self,
        source_images: torch.Tensor,
        texts: Sequence[str],
        target_images: torch.Tensor,
        loss: str,
        generator: torch.Generator,
        gather: Gather | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss terms by name; 'base' is the metric-learning loss every model has.

        `gather` (data-parallel training): the base loss is taken over the global batch's features.
        """
        composed = self.normalization_layer(self.compose_img_text(source_images, texts))
        targets = self.normalization_layer(self.extract_img_feature(target_images))
        return {BASE_LOSS: compute_loss(loss, composed, targets, generator, gather)}

    def compute_loss(
        self,
        source_images: torch.Tensor,
        texts: Sequence[str],
        target_images: torch.Tensor,
        loss: str,
        generator: torch.Generator,
        weights: Mapping[str, float] | None = None,
    ) -> torch.Tensor:
        """The weighted sum of `compute_loss_terms` (default weights: ComposeAE's)."""
        terms = self.compute_loss_terms(source_images, texts, target_images, loss, generator)
        return weighted_loss(terms, DEFAULT_LOSS_WEIGHTS if weights is None else weights)


class ImageOnly(ComposeModel):
    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return image_features

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.extract_img_feature(images)


class TextOnly(ComposeModel):
    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        if self.text_embed_dim != embed_dim:
            raise ValueError(
                f"textonly compares text features ({self.text_embed_dim}-d from {self.text_encoder_name!r}) with"
                f" image features ({embed_dim}-d); use --embed_dim {self.text_embed_dim} or the lstm text encoder"
            )

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return text_features

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.extract_text_feature(texts)


class Concat(ComposeModel):
    """concat(img, text) -> BN, ReLU, Linear(w, w), BN, ReLU, Dropout(0.1), Linear(w, d); w = d + text dim."""

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        width = embed_dim + self.text_embed_dim
        self.composer = nn.Sequential(
            nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width),
            nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, embed_dim),
        )  # fmt: skip

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return self.composer(torch.cat([image_features, text_features], dim=1))


class TIRG(ComposeModel):
    """Text-image residual gating: a0 * sigmoid(gate) * img + a1 * residual, a initialised to [1, 10, 1, 1].

    Only a0 and a1 are used; the vector keeps four entries so the parameter matches the original.
    The composers see concat(img, text) of width d + text dim, so pretrained text features of
    any size work (ComposeAE's "TIRG + BERT").
    """

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        width = embed_dim + self.text_embed_dim
        self.a = nn.Parameter(torch.tensor([1.0, 10.0, 1.0, 1.0]))
        self.gated_feature_composer = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, embed_dim))
        self.res_info_composer = nn.Sequential(
            nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, embed_dim)
        )

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        both = torch.cat([image_features, text_features], dim=1)
        gate = torch.sigmoid(self.gated_feature_composer(both))
        return self.a[0] * gate * image_features + self.a[1] * self.res_info_composer(both)
