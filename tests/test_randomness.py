"""Separate random streams, no reseeded global generator, and generator states that survive a checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hashing_fixtures import write_cub
from torchvision.transforms import functional as TF

from tirg.checkpoint import make_checkpoint, restore_rng_state
from tirg.hashing.data import AugmentedImages, load_cub
from tirg.hashing.train import HashTrainConfig, train_hashing
from tirg.models import build_model
from tirg.runtime import Stream, seeded_generator, stream_seed
from tirg.text import Vocabulary


def test_streams_are_distinct_and_the_batch_stream_keeps_its_seeds():
    seeds = [stream_seed(seed, step, stream, item) for seed, step, stream, item in itertools.product(range(3), range(4), Stream, range(2))]
    assert len(set(seeds)) == len(seeds)
    # Batches as runs drew them before the streams were separated (the README's demo numbers depend on them).
    assert stream_seed(7, 3) == 7 * 1_000_003 + 3
    # The loss's triplets used to come from the very generator the grouped batch sampler drew batch i from.
    batch, triplets = seeded_generator(0, 4), seeded_generator(0, 4, Stream.TRIPLETS)
    assert not torch.equal(torch.rand(8, generator=batch), torch.rand(8, generator=triplets))
    assert torch.equal(
        torch.rand(8, generator=seeded_generator(5, 2, Stream.AUGMENTATION, 9)),
        torch.rand(8, generator=seeded_generator(5, 2, Stream.AUGMENTATION, 9)),
    )


@pytest.fixture(scope="module")
def cub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cub(tmp_path_factory.mktemp("cub") / "CUB_200_2011", n_classes=4, per_class=4, n_train_per_class=3)


def test_augmentation_draws_crops_from_its_own_stream(cub):
    images = load_cub(cub, "train")
    before = torch.get_rng_state()
    first = [AugmentedImages(images, 16, seed=0, epoch=1)[i][0] for i in range(6)]
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is neither drawn on nor reseeded
    again = [AugmentedImages(images, 16, seed=0, epoch=1)[i][0] for i in range(6)]
    other = [AugmentedImages(images, 16, seed=0, epoch=2)[i][0] for i in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    # Each output is a 16 px crop (maybe mirrored) of the image resized to 18 px (8/7 of 16).
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    for index, augmented in enumerate(first):
        resized = TF.to_tensor(TF.resize(AugmentedImages(images, 16, 0, 1).load(index), [18, 18]))
        crops = [resized[:, top : top + 16, left : left + 16] for top in range(3) for left in range(3)]
        pixels = augmented * std + mean
        assert any(torch.allclose(pixels, crop, atol=1e-5) or torch.allclose(pixels, crop.flip(-1), atol=1e-5) for crop in crops)


def test_hash_training_reproduces_its_run_and_leaves_the_global_generator_alone(cub, tmp_path):
    config = HashTrainConfig(
        dataset_path=str(cub), binary_bits=8, batch_size=4, classes_per_batch=2, num_epochs=1, image_size=32,
        batches_per_epoch=2, eval_every=1, eval_batch_size=8,
    )  # fmt: skip
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = train_hashing(config, tmp_path / "first")
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(2)  # whatever the caller's global state, the run is the same
    second = train_hashing(config, tmp_path / "second")
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert first.final == second.final


def test_checkpoints_carry_the_cpu_and_cuda_generator_states(monkeypatch):
    model = build_model("imgonly", Vocabulary.build(["a"]), embed_dim=8)
    torch.manual_seed(3)
    checkpoint = make_checkpoint(model, "imgonly", {}, 0)
    expected = torch.rand(4)
    assert checkpoint["cuda_rng_states"] == [] or torch.cuda.is_available()
    restore_rng_state(checkpoint)
    assert torch.equal(torch.rand(4), expected)

    # Where CUDA is used (no GPU here: torch.cuda's state functions are stood in for), every device's state
    # is saved, and restored on the devices this machine has.
    saved_states = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_states)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    checkpoint = make_checkpoint(model, "imgonly", {}, 0)
    assert checkpoint["cuda_rng_states"] == saved_states
    restore_rng_state(checkpoint)
    assert restored == saved_states[:1]
