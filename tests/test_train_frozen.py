"""`tirg train --freeze_backbone`: backbone features cached once, only the heads train, the checkpoint is the whole model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tirg.checkpoint import load_checkpoint, load_model
from tirg.cli import main
from tirg.config import TrainConfig
from tirg.data import PairView, image_transform, load_dataset
from tirg.errors import CacheError
from tirg.features import compute_and_save, load_feature_cache
from tirg.frozen_backbone import CACHE_FOLDER, FeaturePairView
from tirg.models.image import TimmEncoder, backbone_features, preprocessing_record
from tirg.runtime import seed_everything
from tirg.training import train


def frozen_config(dataset_path: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset_path=str(dataset_path), model="concat", loss="soft_triplet", embed_dim=16, batch_size=4, num_iters=0,
        image_size=32, checkpoint_every=1000, log_every=1, device="cpu", freeze_backbone=True,
    )  # fmt: skip
    return replace(config, **changes)


@pytest.fixture(scope="module")
def start(tiny_css: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen run folder at iteration 0: the initial weights and the training split's backbone-feature cache."""
    seed_everything(0)
    return train(frozen_config(tiny_css), run_dir=tmp_path_factory.mktemp("frozen") / "run", evaluate_test=False).run_dir


def test_the_cache_holds_the_backbone_on_evaluation_images(tiny_css: Path, start: Path) -> None:
    cache = start / CACHE_FOLDER / "train"
    manifest = json.loads((cache / "manifest.json").read_text())
    trainset = load_dataset("css", tiny_css, "train")
    assert manifest["images"]["count"] == len(trainset) == 80 and manifest["dim"] == 512 and manifest["backbone"] == "resnet18"
    assert manifest["preprocessing"]["backbone"]["interpolation"] == "bilinear"
    features = np.load(cache / "features.npy")
    # The slow reference: the initial checkpoint's image model on single images under the evaluation transform.
    model, _ = load_model(start / "latest_checkpoint.pth")
    transform = image_transform(32)
    with torch.no_grad():
        for index in (0, 41, 79):
            expected = backbone_features(model.img_model, transform(trainset.load_image(index))[None])[0]
            assert np.allclose(features[index], expected.numpy(), atol=1e-4)
    # Training batches carry the rows of the pair's source and target, drawn as the image view draws them.
    pairs = PairView(trainset, transform, seed=0)
    source, text, target = FeaturePairView(pairs, features)[(5, 3)]
    pair = pairs.pair((5, 3))
    assert (
        text == pair.text
        and np.array_equal(source.numpy(), features[pair.source])
        and np.array_equal(target.numpy(), features[pair.target])
    )


def test_frozen_steps_change_only_the_heads_and_resume_reuses_the_cache(tiny_css: Path, start: Path, tmp_path: Path) -> None:
    initial = load_checkpoint(start / "latest_checkpoint.pth")["model"]
    cache = start / CACHE_FOLDER / "train" / "features.npy"
    written = cache.stat().st_mtime_ns
    seed_everything(0)
    result = train(frozen_config(tiny_css, num_iters=2), resume=start, evaluate_test=False)
    assert result.iteration == 2 and cache.stat().st_mtime_ns == written
    trained = load_checkpoint(result.checkpoint)["model"]
    changed = {name for name, value in trained.items() if not torch.equal(value, initial[name])}
    body = {name for name in trained if name.startswith("img_model.") and not name.startswith("img_model.fc.")}
    assert body and not changed & body  # weights and batch-norm statistics of the backbone as they were
    assert {"img_model.fc.weight", "img_model.fc.bias", "composer.2.weight", "text_model.lstm.weight_ih_l0"} <= changed


def test_cli_frozen_run_reports_what_eval_gives_and_a_stale_cache_is_refused(
    tiny_css: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, runs = tmp_path / "features", tmp_path / "runs"
    argv = [
        "train",
        "--dataset_path",
        str(tiny_css),
        "--model",
        "tirg",
        "--embed_dim",
        "16",
        "--batch_size",
        "4",
        "--num_iters",
        "3",
        "--image_size",
        "32",
        "--device",
        "cpu",
        "--freeze_backbone",
        "--feature_cache",
        str(cache),
        "--log_dir",
        str(runs),
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    run = Path(report["run_dir"])
    assert json.loads((run / "config.json").read_text())["freeze_backbone"] is True
    # eval runs the checkpoint's whole model (frozen backbone included) on the test images.
    assert main(["eval", "--checkpoint", str(run / "latest_checkpoint.pth"), "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for k in ("R@1", "R@5", "R@10"):
        assert evaluated[k] == pytest.approx(report[k])
    before = (cache / "train" / "features.npy").read_bytes()
    # Another seed initialises another backbone, whose features would differ: refused before any step.
    assert main([*argv, "--seed", "1"]) == 2
    assert "holds backbone features for something else (weights_sha256: cached" in capsys.readouterr().err
    assert (cache / "train" / "features.npy").read_bytes() == before
    assert [p.name for p in runs.iterdir()] == [run.name]  # the refused run left no folder
    with pytest.raises(CacheError, match="weights_sha256"):
        train(frozen_config(tiny_css, seed=1, image_size=32, feature_cache=str(cache)), run_dir=tmp_path / "direct", evaluate_test=False)
    with pytest.raises(ValueError, match="--freeze_backbone caches pooled backbone features; --model tirg_lastconv"):
        frozen_config(tiny_css, model="tirg_lastconv")


def test_checkpoint_and_feature_cache_record_the_preprocessing_and_a_cache_without_it_is_refused(start: Path, tmp_path: Path) -> None:
    checkpoint = start / "latest_checkpoint.pth"
    recorded = load_checkpoint(checkpoint)["preprocessing"]
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert recorded == {
        "image_size": 32, "interpolation": "bilinear", "crop": "centre", **imagenet,
        "backbone": {"image_size": 224, **imagenet, "interpolation": "bilinear", "crop_pct": 0.875},  # torchvision's ResNet-18 recipe
    }  # fmt: skip
    cache = compute_and_save(checkpoint, tmp_path / "cache")
    assert load_feature_cache(cache, checkpoint=checkpoint).manifest["preprocessing"] == recorded
    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["preprocessing"]["backbone"]  # as a cache written before backbones' preprocessing was recorded
    (cache / "manifest.json").write_text(json.dumps(manifest))
    load_feature_cache(cache)  # without a checkpoint to compare with, it still loads
    with pytest.raises(
        CacheError, match=r"computed with preprocessing .* but .* was trained with .*recompute it with `python compute_and_save.py"
    ):
        load_feature_cache(cache, checkpoint=checkpoint)


def test_a_timm_backbone_records_its_own_data_config() -> None:
    pytest.importorskip("timm")
    record = preprocessing_record(TimmEncoder("tf_efficientnet_lite0", 8), 64)
    # timm's pretrained config of tf_efficientnet_lite0: TensorFlow's statistics, bicubic, crop 0.875 of 256.
    assert record["backbone"] == {
        "image_size": 224,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "crop_pct": 0.875,
    }
    assert record["image_size"] == 64 and record["mean"] == [0.485, 0.456, 0.406]
