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
        softplus(1 - 1),
        softplus(1 - 4),  # anchor 0: positive 2, negatives 1, 3
        softplus(1 - 1),
        softplus(1 - 2),  # anchor 1: positive 3, negatives 0, 2
        softplus(1 - 2),
        softplus(1 - 5),  # anchor 2: positive 0, negatives 1, 3
        softplus(1 - 4),
        softplus(1 - 5),  # anchor 3: positive 1, negatives 0, 2
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


# Every (anchor, positive, negative) of the pool [composed; targets] with B = 2 (all kept: 2 negatives < 3).
TWO_PAIR_TRIPLETS = [(0, 2, 1), (0, 2, 3), (1, 3, 0), (1, 3, 2), (2, 0, 1), (2, 0, 3), (3, 1, 0), (3, 1, 2)]


def handwritten_backward(pool: list[list[float]], triplets: list[tuple[int, int, int]]) -> list[list[float]]:
    """google/tirg's MyTripletLossFunc.backward, as plain Python: per triplet (i, j, k),
    f = sigmoid(d_ij - d_ik) and the rows move by +-f (x_i - x_j) / T and -+f (x_i - x_k) / T."""
    n_triplets = len(triplets)
    grad = [[0.0] * len(pool[0]) for _ in pool]
    d = [[sum((a - b) ** 2 for a, b in zip(x, y)) for y in pool] for x in pool]
    for i, j, k in triplets:
        f = 1.0 - 1.0 / (1.0 + math.exp(d[i][j] - d[i][k]))
        for c in range(len(pool[0])):
            grad[i][c] += f * (pool[i][c] - pool[j][c]) / n_triplets
            grad[j][c] += f * (pool[j][c] - pool[i][c]) / n_triplets
            grad[i][c] -= f * (pool[i][c] - pool[k][c]) / n_triplets
            grad[k][c] -= f * (pool[k][c] - pool[i][c]) / n_triplets
    return grad


def soft_triplet_gradients(gradient: str) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(loss value, gradient of the pool through soft_triplet_loss, exact autograd gradient) on two hand-built pairs."""
    composed = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 1.0], [2.0, 0.0]], requires_grad=True)
    loss = soft_triplet_loss(composed, targets, torch.Generator().manual_seed(0), gradient=gradient)
    loss.backward()
    ours = torch.cat([composed.grad, targets.grad])
    pool = torch.cat([composed, targets]).detach().requires_grad_(True)
    reference_value = sum(
        torch.log1p(torch.exp((pool[i] - pool[j]).square().sum() - (pool[i] - pool[k]).square().sum())) for i, j, k in TWO_PAIR_TRIPLETS
    ) / len(TWO_PAIR_TRIPLETS)
    reference_value.backward()
    return loss.item(), ours, pool.grad


def test_soft_triplet_default_gradient_is_the_originals_half_step_with_the_same_value():
    value, ours, exact = soft_triplet_gradients("original")
    # The same hand-computed value as test_soft_triplet_by_hand_on_two_pairs.
    expected = sum(softplus(x) for x in (0, -3, 0, -1, -1, -4, -3, -4)) / 8
    assert value == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(ours, 0.5 * exact, atol=1e-7)
    assert (ours.norm() / exact.norm()).item() == pytest.approx(0.5, abs=1e-6)
    pool = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    assert torch.allclose(ours, torch.tensor(handwritten_backward(pool, TWO_PAIR_TRIPLETS)), atol=1e-6)


def test_soft_triplet_autograd_option_gives_the_exact_gradient_and_the_same_value():
    value, ours, exact = soft_triplet_gradients("autograd")
    assert value == soft_triplet_gradients("original")[0]
    assert torch.allclose(ours, exact, atol=1e-7)
    assert (ours.norm() / exact.norm()).item() == pytest.approx(1.0, abs=1e-6)


def test_soft_triplet_losses_by_name():
    from tirg.losses import LOSSES, compute_loss

    composed = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    grads = {}
    for name in ("soft_triplet", "soft_triplet_autograd"):
        assert name in LOSSES
        composed.grad = None
        compute_loss(name, composed, targets, torch.Generator().manual_seed(0)).backward()
        grads[name] = composed.grad.clone()
    assert torch.allclose(grads["soft_triplet"], 0.5 * grads["soft_triplet_autograd"])
    with pytest.raises(ValueError, match="gradient='half'"):
        soft_triplet_loss(composed, targets, torch.Generator(), gradient="half")
