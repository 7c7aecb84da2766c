"""Model registry: `build_model(name, vocabulary, ...)`."""

from __future__ import annotations

from pathlib import Path

from tirg.models.composers import TIRG, ComposeModel, Concat, ImageOnly, TextOnly
from tirg.models.lastconv import TIRGLastConv
from tirg.text import Vocabulary

MODELS: dict[str, type[ComposeModel]] = {
    "imgonly": ImageOnly,
    "textonly": TextOnly,
    "concat": Concat,
    "tirg": TIRG,
    "tirg_lastconv": TIRGLastConv,
}


def build_model(
    name: str, vocabulary: Vocabulary, embed_dim: int = 512, backbone_weights: str | Path | None = None
) -> ComposeModel:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (--model); choose from {sorted(MODELS)}")
    return MODELS[name](vocabulary, embed_dim, backbone_weights)


__all__ = ["MODELS", "TIRG", "TIRGLastConv", "ComposeModel", "Concat", "ImageOnly", "TextOnly", "build_model"]
