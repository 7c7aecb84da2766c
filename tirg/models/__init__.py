"""Model registry: `build_model(name, vocabulary, ...)`."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tirg.models.composeae import ComposeAE, RealSpaceConcatAE
from tirg.models.composers import TIRG, ComposeModel, Concat, ImageOnly, TextOnly
from tirg.models.lastconv import TIRGLastConv
from tirg.text import Vocabulary

MODELS: dict[str, type[ComposeModel]] = {
    "imgonly": ImageOnly,
    "textonly": TextOnly,
    "concat": Concat,
    "tirg": TIRG,
    "tirg_lastconv": TIRGLastConv,
    # Registry keys are lower case; names match case-insensitively (ComposeAE's own spellings work).
    "composeae": ComposeAE,
    "realspaceconcatae": RealSpaceConcatAE,
}


def canonical_model_name(name: str) -> str:
    """The registry key of `name` ('composeAE' -> 'composeae')."""
    if name.lower() not in MODELS:
        raise ValueError(f"unknown model {name!r} (--model); choose from {sorted(MODELS)} (case-insensitive)")
    return name.lower()


def build_model(
    name: str,
    vocabulary: Vocabulary,
    embed_dim: int = 512,
    backbone_weights: str | Path | None = None,
    *,
    text_encoder: str | nn.Module = "lstm",
    backbone: str = "resnet18",
    image_size: int | None = None,
    text_cache_dir: str | Path | None = None,
) -> ComposeModel:
    """`text_encoder`: 'lstm', 'minilm' or a sentence-transformers folder (see tirg.text_encoders);
    `backbone`: 'resnet18' or 'vit_b_16' (built for `image_size`)."""
    return MODELS[canonical_model_name(name)](
        vocabulary, embed_dim, backbone_weights,
        text_encoder=text_encoder, backbone=backbone, image_size=image_size, text_cache_dir=text_cache_dir,
    )  # fmt: skip


__all__ = [
    "MODELS",
    "TIRG",
    "TIRGLastConv",
    "ComposeAE",
    "ComposeModel",
    "Concat",
    "ImageOnly",
    "RealSpaceConcatAE",
    "TextOnly",
    "build_model",
    "canonical_model_name",
]
