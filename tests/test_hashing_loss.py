from __future__ import annotations

import itertools

import pytest
import torch

from tirg.hashing.loss import default_margin, triplet_hashing_loss, triplet_indices


def test_triplets_of_a_small_batch_by_hand() -> None:
    labels = torch.tensor([0, 1, 0, 1, 2])
    # same-label pairs i < j: (0, 2) and (1, 3); negatives of label 0: {1, 3, 4}, of label 1: {0, 2, 4}
    expected = {(0, 2, 1), (0, 2, 3), (0, 2, 4), (1, 3, 0), (1, 3, 2), (1, 3, 4)}
    triplets = set(zip(*(t.tolist() for t in triplet_indices(labels))))
    assert triplets == expected


def test_triplet_count_of_a_balanced_batch() -> None:
    # 10 classes x 8 images: per class C(8, 2) = 28 pairs, each with the 72 images of other classes.
    labels = torch.arange(10).repeat_interleave(8)[torch.randperm(80, generator=torch.Generator().manual_seed(0))]
    anchor, positive, negative = triplet_indices(labels)
    assert len(anchor) == 10 * 28 * 72 == 20160
    assert (labels[anchor] == labels[positive]).all() and (labels[anchor] != labels[negative]).all()
    assert (anchor < positive).all()


def test_loss_value_by_hand() -> None:
    codes = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([3, 3, 4])
    # one triplet (0, 1, 2): |a-p|^2 = 0.25, |a-n|^2 = 2 -> relu(0.25 - 2 + m)
    loss, count = triplet_hashing_loss(codes, labels, margin=2.0)
    assert count == 1 and loss.item() == pytest.approx(0.25)
    loss, _ = triplet_hashing_loss(codes, labels, margin=1.0)
    assert loss.item() == 0.0
    # quantisation penalty: mean((|c| - 1)^2) over the 6 entries = (0 + 1 + 0.25 + 1 + 1 + 0) / 6
    loss, _ = triplet_hashing_loss(codes, labels, margin=2.0, quantization_weight=0.5)
    assert loss.item() == pytest.approx(0.25 + 0.5 * 3.25 / 6)
    loss.backward()
    assert codes.grad is not None


def test_batch_without_triplets_gives_zero_with_a_graph() -> None:
    codes = torch.zeros((3, 4), requires_grad=True)
    loss, count = triplet_hashing_loss(codes, torch.tensor([0, 1, 2]), margin=8.0)
    assert count == 0 and loss.item() == 0.0
    loss.backward()


def test_default_margin_matches_the_original_settings() -> None:
    assert default_margin(16) == 8 and default_margin(64) == 20
    assert [default_margin(b) for b in (12, 32, 48)] == [7, 12, 16]


def test_all_pairs_enumeration_agrees_with_itertools() -> None:
    labels = torch.tensor([2, 2, 2, 5, 5, 7])
    expected = {
        (i, j, n) for i, j in itertools.combinations(range(6), 2) if labels[i] == labels[j] for n in range(6) if labels[n] != labels[i]
    }
    assert set(zip(*(t.tolist() for t in triplet_indices(labels)))) == expected
