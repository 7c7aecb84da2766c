import math

import pytest
import torch

from tirg.losses import NormalizationLayer, batch_based_classification_loss, soft_triplet_loss


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def test_normalization_scales_rows_to_four():
    out = NormalizationLayer()(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert torch.allclose(out, torch.tensor([[2.4, 3.2], [0.0, 4.0]]))


def test_batch_based_classification_by_hand():
    # logits = identity, so each row's loss is -log(e / (e + 1)) = log(1 + 1/e).
    eye = torch.eye(2)
    assert batch_based_classification_loss(eye, eye).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # Row 0 has logits (2, 0) and class 0: log(1 + e^-2). Row 1 has logits (0, 0) and class 1: log 2.
    composed = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert batch_based_classification_loss(composed, targets).item() == pytest.approx(expected)


def test_soft_triplet_by_hand_on_two_pairs():
    # Pool p0=(0,0) p1=(1,0) | p2=(0,1) p3=(2,0); labels 0 1 0 1. With B=2 each anchor has
    # 2 negatives (< 3), so every triplet is kept. Squared distances:
    # d01=1 d02=1 d03=4 d12=2 d13=1 d23=5.
    composed = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    terms = [
        softplus(1 - 1), softplus(1 - 4),  # anchor 0: positive 2, negatives 1, 3
        softplus(1 - 1), softplus(1 - 2),  # anchor 1: positive 3, negatives 0, 2
        softplus(1 - 2), softplus(1 - 5),  # anchor 2: positive 0, negatives 1, 3
        softplus(1 - 4), softplus(1 - 5),  # anchor 3: positive 1, negatives 0, 2
    ]
    loss = soft_triplet_loss(composed, targets, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def reference_all_triplets(composed: torch.Tensor, targets: torch.Tensor) -> float:
    pool = torch.cat([composed, targets]).tolist()
    n = len(pool)
    labels = [i % len(composed) for i in range(n)]
    d = [[sum((a - b) ** 2 for a, b in zip(pool[i], pool[j])) for j in range(n)] for i in range(n)]
    terms = [
        softplus(d[i][j] - d[i][k])
        for i in range(n) for j in range(n) for k in range(n)
        if i != j and labels[i] == labels[j] and labels[i] != labels[k]
    ]  # fmt: skip
    return sum(terms) / len(terms)


def test_soft_triplet_with_all_negatives_equals_plain_loop():
    torch.manual_seed(0)
    composed, targets = torch.randn(5, 3), torch.randn(5, 3)
    loss = soft_triplet_loss(composed, targets, torch.Generator().manual_seed(0), negatives_per_anchor=8)
    assert loss.item() == pytest.approx(reference_all_triplets(composed, targets), rel=1e-5)


def test_soft_triplet_sampling_follows_the_generator():
    torch.manual_seed(0)
    composed, targets = torch.randn(8, 4), torch.randn(8, 4)
    same = [soft_triplet_loss(composed, targets, torch.Generator().manual_seed(7)).item() for _ in range(2)]
    other = soft_triplet_loss(composed, targets, torch.Generator().manual_seed(8)).item()
    assert same[0] == same[1]
    assert other != same[0]


def test_soft_triplet_needs_two_pairs():
    with pytest.raises(ValueError, match="at least 2"):
        soft_triplet_loss(torch.randn(1, 3), torch.randn(1, 3), torch.Generator())
