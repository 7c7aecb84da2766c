"""TIRG's metric-learning losses, on features already scaled by `NormalizationLayer`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

# soft_triplet takes the original's step; soft_triplet_autograd the same loss with its exact gradient (twice as large).
LOSSES = ("soft_triplet", "soft_triplet_autograd", "batch_based_classification")

# google/tirg's MyTripletLossFunc writes its backward by hand with (f_i - f_j) where the derivative of
# its squared distance is 2 (f_i - f_j): every gradient it returns is half its forward's. The default
# keeps that step, so the published learning rates train as they did.
ORIGINAL_SOFT_TRIPLET_GRADIENT_SCALE = 0.5

# Names of the loss terms a model returns, and ComposeAE's weights for them (its main.py: 1, 0.1, 0.1, 0.01).
BASE_LOSS = "base"
DEFAULT_LOSS_WEIGHTS = {BASE_LOSS: 1.0, "image_reconstruction": 0.1, "text_reconstruction": 0.1, "rotational_symmetry": 0.01}


class NormalizationLayer(nn.Module):
    """x -> s * x / ||x|| with a learnable scale s (initial 4.0)."""

    def __init__(self, initial_scale: float = 4.0, learn_scale: bool = True):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(initial_scale)), requires_grad=learn_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


def batch_based_classification_loss(composed: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over composed . targets^T (B x B); query i's class is its own target i."""
    logits = composed @ targets.T
    return F.cross_entropy(logits, torch.arange(len(composed), device=composed.device))


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass; the backward multiplies the incoming gradient by `scale`."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, value: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return value.view_as(value)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def soft_triplet_loss(
    composed: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    negatives_per_anchor: int = 3,
    gradient: str = "original",
) -> torch.Tensor:
    """TIRG's soft triplet loss: mean of log(1 + exp(d(a, p) - d(a, n))), d squared Euclidean.

    The pool is the 2B vectors [composed; targets], item i labelled i mod B, so each anchor
    has one positive (its pair) and 2B - 2 negatives. As in the original, each anchor keeps
    `negatives_per_anchor` triplets drawn uniformly without replacement; the draw uses
    `generator` so that training is reproducible.

    gradient: "original" returns the loss value unchanged but back-propagates half its exact
    gradient, as the original's hand-written backward did (ORIGINAL_SOFT_TRIPLET_GRADIENT_SCALE);
    "autograd" back-propagates the exact gradient.
    """
    if gradient not in ("original", "autograd"):
        raise ValueError(f"gradient={gradient!r}: expected 'original' or 'autograd'")
    batch = len(composed)
    if batch < 2:
        raise ValueError("soft_triplet needs a batch of at least 2 pairs")
    pool = torch.cat([composed, targets])
    distances = torch.cdist(pool, pool).square()
    anchors = torch.arange(2 * batch, device=pool.device)
    positives = (anchors + batch) % (2 * batch)
    # Random keys, with the anchor and its positive pushed last, select a uniform subset of negatives.
    keys = torch.rand(2 * batch, 2 * batch, generator=generator).to(pool.device)
    keys[anchors, anchors] = 2.0
    keys[anchors, positives] = 2.0
    kept = min(negatives_per_anchor, 2 * batch - 2)
    negatives = keys.topk(kept, dim=1, largest=False).indices
    margins = distances[anchors, positives][:, None] - distances.gather(1, negatives)
    loss = F.softplus(margins).mean()
    return _ScaleGradient.apply(loss, ORIGINAL_SOFT_TRIPLET_GRADIENT_SCALE) if gradient == "original" else loss


# Turns one process's rows into the global batch's (tirg.distributed.gather_batch under torchrun).
Gather = Callable[[torch.Tensor], torch.Tensor]


def compute_loss(
    name: str, composed: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, gather: Gather | None = None
) -> torch.Tensor:
    """Loss `name` over the batch; with `gather`, over the global batch of every process, so that
    each query meets every other process's targets as negatives, exactly as in one process."""
    if gather is not None:
        composed, targets = gather(composed), gather(targets)
    if name == "soft_triplet":
        return soft_triplet_loss(composed, targets, generator, gradient="original")
    if name == "soft_triplet_autograd":
        return soft_triplet_loss(composed, targets, generator, gradient="autograd")
    if name == "batch_based_classification":
        return batch_based_classification_loss(composed, targets)
    raise ValueError(f"unknown loss {name!r} (--loss); choose from {LOSSES}")


def weighted_loss(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """sum of weights[name] * term; a term without a weight is an error, not silently dropped."""
    unweighted = sorted(set(terms) - set(weights))
    if unweighted:
        raise ValueError(f"no weight for loss terms {unweighted}; weights are given for {sorted(weights)}")
    return sum(weights[name] * value for name, value in terms.items())
