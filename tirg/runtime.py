"""Process-level settings that only entry points (CLI, notebooks, tests) should call."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """A private generator for draw number `stream` (an iteration, an epoch) of run `seed`.

    Deriving every draw from (seed, stream) instead of one running generator lets training
    stop anywhere and resume with the same draws.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)
