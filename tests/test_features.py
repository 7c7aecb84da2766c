import json

import numpy as np
import pytest

from tirg.checkpoint import atomic_torch_save, load_checkpoint, load_model
from tirg.config import TrainConfig
from tirg.data import image_transform, load_dataset
from tirg.errors import CacheError
from tirg.evaluate import evaluate, recall_from_features
from tirg.features import compute_and_save, load_feature_cache
from tirg.runtime import seed_everything
from tirg.training import train


@pytest.fixture(scope="module")
def trained_checkpoint(tiny_css, tmp_path_factory):
    seed_everything(0)
    config = TrainConfig(
        dataset_path=str(tiny_css), model="tirg", loss="batch_based_classification", embed_dim=16,
        batch_size=4, num_iters=2, image_size=32, device="cpu",
    )  # fmt: skip
    return train(config, run_dir=tmp_path_factory.mktemp("run")).checkpoint


def test_cache_round_trip_reproduces_the_evaluation(trained_checkpoint, tiny_css, tmp_path):
    cache_dir = compute_and_save(trained_checkpoint, tmp_path / "cache")
    cache = load_feature_cache(cache_dir, expect={"dataset": "css", "split": "test", "model": "tirg"}, checkpoint=trained_checkpoint)
    testset = load_dataset("css", tiny_css, "test")
    assert isinstance(cache.query_features, np.memmap) and cache.query_features.dtype == np.float32
    assert cache.query_features.shape == (len(testset.queries), 16)
    assert cache.gallery_features.shape == (len(testset), 16)
    np.testing.assert_allclose(np.linalg.norm(cache.gallery_features, axis=1), 1.0, rtol=1e-5)
    assert cache.query_sources.tolist() == [q.source for q in testset.queries]
    assert cache.target_captions == [q.target_caption for q in testset.queries]
    assert cache.gallery_captions == testset.captions
    assert cache.manifest["checkpoint_iteration"] == 2 and cache.manifest["preprocessing"]["image_size"] == 32
    # Recall from the cache equals recall straight from the model.
    model, _ = load_model(trained_checkpoint)
    direct = evaluate(model, testset, image_transform(32), ks=(1, 5, 10))
    cached = recall_from_features(cache.query_features, cache.gallery_features, testset.queries, cache.gallery_captions, ks=(1, 5, 10))
    assert {f"R@{k}": v for k, v in cached.items()} == pytest.approx(direct)


def test_mismatched_or_stale_cache_is_refused(trained_checkpoint, tmp_path):
    cache_dir = compute_and_save(trained_checkpoint, tmp_path / "cache")
    with pytest.raises(CacheError, match="split='test', expected 'train'"):
        load_feature_cache(cache_dir, expect={"split": "train"})
    with pytest.raises(CacheError, match="model='tirg', expected 'concat'"):
        load_feature_cache(cache_dir, expect={"model": "concat"})
    # Retraining changes the checkpoint file: the old cache is stale.
    state = load_checkpoint(trained_checkpoint)
    state["iteration"] += 1
    retrained = tmp_path / "retrained.pth"
    atomic_torch_save(state, retrained)
    with pytest.raises(CacheError, match="checkpoint_sha256"):
        load_feature_cache(cache_dir, checkpoint=retrained)


def test_corrupt_cache_files_are_refused(trained_checkpoint, tmp_path):
    cache_dir = compute_and_save(trained_checkpoint, tmp_path / "cache")
    np.save(cache_dir / "gallery_features.npy", np.zeros((3, 16), np.float32))
    with pytest.raises(CacheError, match=r"gallery_features.npy is float32\[3, 16\], the manifest says"):
        load_feature_cache(cache_dir)
    (cache_dir / "gallery_features.npy").unlink()
    with pytest.raises(CacheError, match="gallery_features.npy is missing"):
        load_feature_cache(cache_dir)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    (cache_dir / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(CacheError, match="format"):
        load_feature_cache(cache_dir)
    with pytest.raises(CacheError, match="not a feature cache"):
        load_feature_cache(tmp_path / "nowhere")
