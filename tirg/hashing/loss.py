"""Triplet hashing loss over every valid triplet of a batch, on the relaxed (tanh) codes."""

from __future__ import annotations

import torch


def default_margin(bits: int) -> float:
    """bits / 4 + 4: the original's two settings (8 for 16 bits, 20 for 64) on one line.

    The original README's rule, "a bit more than a quarter of the bits", fits both; this
    is the straight line through them, used for every other bit length.
    """
    return bits / 4 + 4


def triplet_indices(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchor, positive, negative) index triples as the original enumerated them.

    Every same-label pair i < j (anchor = the earlier index) with every index whose
    label differs. With C classes x M images: C * M(M-1)/2 * (C-1)M triplets.
    """
    labels = labels.reshape(-1)
    same = labels[:, None] == labels[None, :]
    earlier = torch.ones_like(same).triu(diagonal=1)
    valid = (same & earlier)[:, :, None] & ~same[:, None, :]
    anchor, positive, negative = valid.nonzero(as_tuple=True)
    return anchor, positive, negative


def triplet_hashing_loss(
    codes: torch.Tensor, labels: torch.Tensor, margin: float, quantization_weight: float = 0.0
) -> tuple[torch.Tensor, int]:
    """Mean of ReLU(|a-p|^2 - |a-n|^2 + margin) over all valid triplets (easy ones included).

    Squared Euclidean distances without a square root, as the original. The optional
    quantisation penalty adds quantization_weight * mean((|code| - 1)^2), pulling the
    relaxed codes towards +-1 so that sign() changes them less. Returns (loss, number
    of triplets); a batch with no triplet gives only the penalty (0 without it).
    """
    anchor, positive, negative = triplet_indices(labels)
    loss = codes.sum() * 0.0  # keeps the graph when the batch has no triplet
    if len(anchor):
        to_positive = (codes[anchor] - codes[positive]).pow(2).sum(dim=1)
        to_negative = (codes[anchor] - codes[negative]).pow(2).sum(dim=1)
        loss = loss + torch.relu(to_positive - to_negative + margin).mean()
    if quantization_weight:
        loss = loss + quantization_weight * (codes.abs() - 1).pow(2).mean()
    return loss, len(anchor)
