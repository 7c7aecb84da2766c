"""Process-level settings that only entry points (CLI, notebooks, tests) should call, and the
run's random streams, which the library uses instead of any global generator."""

from __future__ import annotations

import enum
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


def check_amp(amp: bool, device: torch.device, flag: str = "--amp") -> None:
    """Refuse bfloat16 autocast on a GPU without bfloat16 (before Ampere) before any work; CPUs have it."""
    if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"{flag} trains under bfloat16 autocast, which {torch.cuda.get_device_name(device)} does not support; train without {flag}"
        )


class Stream(enum.IntEnum):
    """The independent random streams of one run; a draw in one never shifts another's."""

    BATCHES = 0  # which training items form each batch
    TRIPLETS = 1  # the soft triplet loss's negatives
    AUGMENTATION = 2  # random crops and flips of training images
    HOLD_OUT = 3  # which training sources are held out for validation
    VALIDATION = 4  # the validation loss's triplets


def stream_seed(seed: int, step: int, stream: Stream = Stream.BATCHES, item: int = 0) -> int:
    """The 64-bit seed of draw (`step`, `item`) of `stream` in run `seed`.

    The batch stream keeps the derivation used before the streams were separated
    (seed * 1_000_003 + step), so earlier runs, and the README's numbers, draw the same batches;
    the others hash (seed, stream, step, item) with NumPy's SeedSequence.
    """
    if stream == Stream.BATCHES and item == 0:
        return seed * 1_000_003 + step
    return int(np.random.SeedSequence([seed, int(stream), step, item]).generate_state(1, np.uint64)[0])


def seeded_generator(seed: int, step: int, stream: Stream = Stream.BATCHES, item: int = 0) -> torch.Generator:
    """A private generator for draw number `step` (an iteration, an epoch) of `stream` in run `seed`.

    Deriving every draw from (seed, stream, step) instead of one running generator lets training
    stop anywhere and resume with the same draws, and keeps the streams from drawing on one another.
    """
    return torch.Generator().manual_seed(stream_seed(seed, step, stream, item))


def cuda_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generators a run on `device` draws from (none on CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
