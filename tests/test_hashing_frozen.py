"""Frozen-backbone deep hashing: the backbone-feature cache and head-only training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hashing_fixtures import write_cub

from tirg.cli import main
from tirg.errors import CacheError, ConfigError
from tirg.hashing.data import ImageLabelDataset, eval_transform, load_cub
from tirg.hashing.frozen import freeze_backbone, frozen_identity, split_features
from tirg.hashing.loss import triplet_hashing_loss
from tirg.hashing.model import HashNet, hash_layer
from tirg.hashing.train import HashTrainConfig, build_optimizer, build_scheduler

SIZE = 32


@pytest.fixture(scope="module")
def cub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cub(tmp_path_factory.mktemp("cub") / "CUB_200_2011", n_classes=4, per_class=6, n_train_per_class=4)


def hash_net(seed: int) -> HashNet:
    torch.manual_seed(seed)
    return HashNet(8, None, "resnet18")


def test_cache_round_trip_equals_the_backbone_on_eval_images(cub: Path, tmp_path: Path) -> None:
    model, train = hash_net(0), load_cub(cub, "train")
    cache = tmp_path / "cache" / "train"
    features = split_features(model, None, train, cache, SIZE, batch_size=5)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert features.shape == (16, 512) and manifest["dim"] == 512 and manifest["images"]["count"] == 16
    assert manifest["backbone"] == "resnet18" and manifest["weights"] == "none" and manifest["preprocessing"]["image_size"] == SIZE
    # The slow reference: the backbone on each image under the evaluation transform, one at a time.
    model.eval()
    images = ImageLabelDataset(train, eval_transform(SIZE))
    with torch.no_grad():
        expected = torch.cat([model.backbone_features(images[i][0][None]) for i in (0, 7, 15)])
    assert torch.allclose(features[[0, 7, 15]], expected, atol=1e-5)

    # A second run reads the file and never calls the backbone.
    def unused(images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the backbone ran although its features are cached")

    model.backbone_features = unused
    assert torch.equal(split_features(model, None, train, cache, SIZE), features)


def test_a_stale_cache_is_refused_and_left_untouched(cub: Path, tmp_path: Path) -> None:
    train, test = load_cub(cub, "train"), load_cub(cub, "test")
    cache = tmp_path / "train"
    split_features(hash_net(0), None, train, cache, SIZE)
    before = (cache / "features.npy").read_bytes()
    with pytest.raises(CacheError, match=r"holds backbone features for something else \(weights_sha256: cached"):
        split_features(hash_net(1), None, train, cache, SIZE)  # other weights
    with pytest.raises(CacheError, match=r"images: cached \{'count': 16"):
        split_features(hash_net(0), None, test, cache, SIZE)  # other image list
    with pytest.raises(CacheError, match="preprocessing: cached"):
        split_features(hash_net(0), None, train, cache, SIZE + 8)
    assert (cache / "features.npy").read_bytes() == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(CacheError, match="is not a backbone-feature cache"):
        split_features(hash_net(0), None, train, foreign, SIZE)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert frozen_identity(hash_net(0), None, train, SIZE) == frozen_identity(hash_net(0), "none", train, SIZE)


def test_a_frozen_training_step_changes_only_the_head(cub: Path, tmp_path: Path) -> None:
    model, train = hash_net(0), load_cub(cub, "train")
    features = split_features(model, None, train, tmp_path / "train", SIZE)
    freeze_backbone(model)
    optimizer = build_optimizer(model, HashTrainConfig(batch_size=8, classes_per_batch=2, optimizer_name="Adam"))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    loss, _ = triplet_hashing_loss(model.head(features), torch.as_tensor(train.labels), margin=4.0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}
    assert changed == {"net.fc.weight", "net.fc.bias"}


def test_cli_frozen_run_then_eval_of_its_checkpoint(cub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, cache = tmp_path / "run", tmp_path / "features"
    argv = [
        "hash",
        "train",
        "--dataset_name",
        "CUB",
        "--dataset_path",
        str(cub),
        "--binary_bits",
        "16",
        "--batchSize",
        "8",
        "--classes_per_batch",
        "2",
        "--num_epochs",
        "3",
        "--optimizer_name",
        "Adam",
        "--lr",
        "0.01",
        "--image_size",
        str(SIZE),
        "--eval_every",
        "3",
        "--hidden_dim",
        "8",
        "--dropout",
        "0.2",
        "--lr_schedule",
        "cosine",
        "--freeze_backbone",
        "--feature_cache",
        str(cache),
        "--out",
        str(run),
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in cache.iterdir()) == ["test", "train"]
    # The checkpoint's full network (its hidden head rebuilt from the config) on images gives the codes
    # the run computed from cached features.
    assert main(["hash", "eval", "--checkpoint", str(run / "checkpoint.pth")]) == 0
    assert json.loads(capsys.readouterr().out)["map_all"] == pytest.approx(report["final"]["map_all"])
    assert np.isfinite(report["final"]["map_all"])


def test_hidden_hash_head_by_hand() -> None:
    assert isinstance(hash_layer(3, 2), torch.nn.Linear)  # the original's head, under its state-dict names
    head = hash_layer(2, 1, hidden_dim=2, dropout=0.5)
    assert [type(m).__name__ for m in head] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    with torch.no_grad():
        head[1].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        head[1].bias.copy_(torch.tensor([0.0, -1.0]))
        head[4].weight.copy_(torch.tensor([[1.0, 1.0]]))
        head[4].bias.copy_(torch.tensor([0.5]))
    head.eval()  # dropout off
    x = torch.tensor([[3.0, 1.0], [-1.0, 2.0]])
    # [3, 1]: hidden [2, 5] -> 2 + 5 + 0.5; [-1, 2]: hidden [-3, -3] -> ReLU 0 -> 0.5
    assert head(x).flatten().tolist() == [7.5, 0.5]


def test_cosine_schedule_and_dropout_range() -> None:
    config = HashTrainConfig(num_epochs=4, lr=0.02, lr_schedule="cosine")
    optimizer = build_optimizer(torch.nn.Linear(2, 2), config)
    scheduler = build_scheduler(optimizer, config)
    lrs = []
    for _ in range(4):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.02 * (1 + np.cos(np.pi * k / 4)) / 2 for k in (1, 2, 3, 4)])  # 0.01 after 2 epochs, 0 at the end
    with pytest.raises(ConfigError, match="--dropout"):
        HashTrainConfig(dropout=1.0)
