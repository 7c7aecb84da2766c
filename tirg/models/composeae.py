"""ComposeAE (Anwaar et al., WACV 2021) and its ablation RealSpaceConcatAE.

ComposeAE maps the image feature z to x1 = eta(z) and the text feature q to an angle per
coordinate delta = gamma(q), rotates x1 by delta in the complex plane (x1 * exp(i delta)),
and maps the result back to image space two ways: rho on the concatenated real and
imaginary parts, and rho_conv on a 1-D convolution over the stacked channels
[x1, delta, z, re, im]. The composition is a1 * rho + a0 * rho_conv, with a initialised to
[1, 10, 1, 1] as in TIRG. Decoders reconstruct z and q from the composition, and the
rotational symmetry loss composes the *target* with the conjugate rotation exp(-i delta)
and asks it to land on the source.

The original kept the conjugate sign in a 32 x 1 CUDA tensor made at import time, so it
needed a GPU and failed on batches over 32; here it is a Python sign, valid for any batch
size and device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tirg.losses import BASE_LOSS, Gather, compute_loss
from tirg.models.composers import ComposeModel
from tirg.text import Vocabulary

CONV_CHANNELS = 64


def complex_rotation(x: torch.Tensor, delta: torch.Tensor, conjugate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, imaginary) parts of x * exp(i delta), or of x * exp(-i delta) when `conjugate`."""
    sign = -1.0 if conjugate else 1.0
    return x * torch.cos(delta), sign * x * torch.sin(delta)


def _pool_width(width: int) -> int:
    """Adaptive max-pool length so that 64 channels flatten to about `width` (16 for ComposeAE's 1024)."""
    return max(1, width // CONV_CHANNELS)


def _mlp_to_image(in_dim: int, embed_dim: int) -> nn.Sequential:
    """BN -> ReLU -> Linear(in, d) -> ReLU -> Linear(d, d): the shape of rho, rho_conv's head and the decoders."""
    return nn.Sequential(nn.BatchNorm1d(in_dim), nn.ReLU(), nn.Linear(in_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))


class Projection(NamedTuple):
    x1: torch.Tensor  # eta(z)
    delta: torch.Tensor  # gamma(q), the rotation angle of each coordinate
    real: torch.Tensor
    imaginary: torch.Tensor


class ComplexProjection(nn.Module):
    """eta: BN, Linear, Dropout, ReLU, Linear on the image; gamma: BN, Linear, ReLU, Linear on the text."""

    def __init__(self, embed_dim: int, text_embed_dim: int, dropout: float = 0.5):
        super().__init__()
        d = embed_dim
        self.image_features = nn.Sequential(
            nn.BatchNorm1d(d), nn.Linear(d, d), nn.Dropout(dropout), nn.ReLU(), nn.Linear(d, d)
        )  # fmt: skip
        self.text_features = nn.Sequential(
            nn.BatchNorm1d(text_embed_dim), nn.Linear(text_embed_dim, d), nn.ReLU(), nn.Linear(d, d)
        )  # fmt: skip

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, conjugate: bool = False) -> Projection:
        x1 = self.image_features(image_features)
        delta = self.text_features(text_features)
        real, imaginary = complex_rotation(x1, delta, conjugate)
        return Projection(x1, delta, real, imaginary)


class ConvMapping(nn.Module):
    """rho_conv: Conv1d(5 -> 64, k=3) over [x1, delta, z, re, im], adaptive max pool, then the MLP head."""

    def __init__(self, embed_dim: int, in_channels: int = 5):
        super().__init__()
        pooled = _pool_width(2 * embed_dim)
        self.conv = nn.Conv1d(in_channels, CONV_CHANNELS, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveMaxPool1d(pooled)
        self.mapping = _mlp_to_image(CONV_CHANNELS * pooled, embed_dim)

    def forward(self, channels: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.pool(self.conv(channels)).flatten(1))


class AutoencoderComposer(ComposeModel):
    """Shared by ComposeAE and RealSpaceConcatAE: the a-weighted sum of two paths, and the two decoders."""

    # Whether the loss adds the rotational symmetry term (ComposeAE only, as in the original).
    rotational_symmetry = False

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        self.a = nn.Parameter(torch.tensor([1.0, 10.0, 1.0, 1.0]))
        self.image_decoder = _mlp_to_image(embed_dim, embed_dim)
        t = self.text_embed_dim
        self.text_decoder = nn.Sequential(
            nn.BatchNorm1d(embed_dim), nn.ReLU(), nn.Linear(embed_dim, t), nn.ReLU(), nn.Linear(t, t)
        )  # fmt: skip

    def compute_loss_terms(
        self,
        source_images: torch.Tensor,
        texts: Sequence[str],
        target_images: torch.Tensor,
        loss: str,
        generator: torch.Generator,
        gather: Gather | None = None,
    ) -> dict[str, torch.Tensor]:
        """base, image_reconstruction, text_reconstruction (MSE), and for ComposeAE rotational_symmetry.

        As in the original, the symmetry term composes the unnormalised target features with
        the same text and the conjugate rotation, and compares the result with the source under
        the base loss. With `gather` the two metric-learning terms are over the global batch; the
        reconstruction terms are means over this process's rows, which DDP's gradient averaging
        turns into the global mean.
        """
        source = self.extract_img_feature(source_images)
        text = self.extract_text_feature(texts)
        target = self.extract_img_feature(target_images)
        composed = self.compose(source, text)
        normalize = self.normalization_layer
        terms = {
            BASE_LOSS: compute_loss(loss, normalize(composed), normalize(target), generator, gather),
            "image_reconstruction": F.mse_loss(self.image_decoder(composed), source),
            "text_reconstruction": F.mse_loss(self.text_decoder(composed), text),
        }
        if self.rotational_symmetry:
            back = self.compose(target, text, conjugate=True)
            terms["rotational_symmetry"] = compute_loss(loss, normalize(back), normalize(source), generator, gather)
        return terms


class ComposeAE(AutoencoderComposer):
    """Two complex projections (no shared weights), one followed by rho and one by rho_conv."""

    rotational_symmetry = True

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        self.linear_projection = ComplexProjection(embed_dim, self.text_embed_dim)
        self.rho = _mlp_to_image(2 * embed_dim, embed_dim)
        self.conv_projection = ComplexProjection(embed_dim, self.text_embed_dim)
        self.rho_conv = ConvMapping(embed_dim)

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor, conjugate: bool = False) -> torch.Tensor:
        linear = self.linear_projection(image_features, text_features, conjugate)
        theta_linear = self.rho(torch.cat([linear.real, linear.imaginary], dim=1))
        conv = self.conv_projection(image_features, text_features, conjugate)
        channels = torch.stack([conv.x1, conv.delta, image_features, conv.real, conv.imaginary], dim=1)
        theta_conv = self.rho_conv(channels)
        return self.a[1] * theta_linear + self.a[0] * theta_conv


class RealSpaceConcatAE(AutoencoderComposer):
    """The paper's "concat in real space" ablation: no rotation, both paths read concat(z, q)."""

    def __init__(self, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None, **options):
        super().__init__(vocabulary, embed_dim, backbone_weights, **options)
        width = embed_dim + self.text_embed_dim
        pooled = _pool_width(width)
        self.linear_mapping = _mlp_to_image(width, embed_dim)
        self.conv = nn.Conv1d(1, CONV_CHANNELS, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveMaxPool1d(pooled)
        self.conv_mapping = _mlp_to_image(CONV_CHANNELS * pooled, embed_dim)

    def compose(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        both = torch.cat([image_features, text_features], dim=1)
        theta_linear = self.linear_mapping(both)
        theta_conv = self.conv_mapping(self.pool(self.conv(both.unsqueeze(1))).flatten(1))
        return self.a[1] * theta_linear + self.a[0] * theta_conv
