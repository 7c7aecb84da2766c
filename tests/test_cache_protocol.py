"""Feature caches describe their data set options, query texts and retrieval protocol, and every
consumer (comparison, lsh.py, retrieval) rebuilds the cache's own data set and scores it by its rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import root_script
from fixture_trees import LABELS, write_fashion200k

from tirg.checkpoint import atomic_torch_save, load_checkpoint
from tirg.compare import CompareConfig, DatasetScore, compare_feature_cache
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.errors import CacheError
from tirg.evaluate import metrics_from_features
from tirg.features import check_same_checkpoint, compute_and_save, dataset_for_cache, load_feature_cache
from tirg.index import LSHConfig
from tirg.plots.retrieval_figures import cache_query_figure
from tirg.retrieval import cache_query
from tirg.runtime import seed_everything
from tirg.training import train


def tiny_checkpoint(dataset: str, path: Path, run_dir: Path) -> Path:
    """One SGD step on a fixture tree, 32 px images: a checkpoint that records the run's data set."""
    seed_everything(0)
    config = TrainConfig(
        dataset=dataset, dataset_path=str(path), loss="batch_based_classification", embed_dim=16, batch_size=4,
        num_iters=1, image_size=32, device="cpu",
    )  # fmt: skip
    return train(config, run_dir=run_dir).checkpoint


def variant(checkpoint: Path, out: Path, **config: object) -> Path:
    """The same weights with other run settings in the checkpoint's config (what a run with those flags records)."""
    state = load_checkpoint(checkpoint)
    state["config"] = {**state["config"], **config}
    atomic_torch_save(state, out)
    return out


@pytest.fixture(scope="module")
def f200k_checkpoint(fashion200k_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint("fashion200k", fashion200k_tree, tmp_path_factory.mktemp("f200k_run"))


def test_a_one_category_cache_records_its_options_and_rebuilds_only_that_category(f200k_checkpoint, fashion200k_tree, tmp_path):
    checkpoint = variant(f200k_checkpoint, tmp_path / "pants.pth", category_to_train="pants", query_template="change {} to {}")
    cache = load_feature_cache(compute_and_save(checkpoint, tmp_path / "cache"))
    manifest = cache.manifest
    assert manifest["version"] == 2
    assert manifest["dataset_options"] == {"categories": ["pants"], "template": "change {} to {}"}
    assert manifest["text"] == {"use_complete_text_query": False, "text_encoder": "lstm"}
    assert manifest["protocol"] == {"exclude_source": True, "metric": "RetrievalDataset.retrieval_metrics", "extra_search_depth": 0}
    dataset = dataset_for_cache(cache)
    pants = [path for path, _ in LABELS[("pants", "test")]]
    assert [str(p.relative_to(fashion200k_tree)) for p in dataset.image_files] == pants
    assert [q.text for q in dataset.queries] == ["change green to blue"]
    found = cache_query(cache, 0, k=1)
    assert found.ids == [1] and found.hits == [True]  # the only other pants image, the target
    # All categories (what the loader gives without the cache's options) is not this cache's gallery.
    everything = load_dataset("fashion200k", fashion200k_tree, "test")
    with pytest.raises(CacheError, match=r"has 6 images but the cache .* has 2"):
        cache_query_figure(cache, everything, 0, k=1)
    manifest_file = cache.path / "manifest.json"
    manifest_file.write_text(json.dumps({**manifest, "dataset_options": {"categories": None, "template": "change {} to {}"}}))
    with pytest.raises(CacheError, match=r"has 6 gallery images and 3 queries, but the cache .* has 2 and 1"):
        dataset_for_cache(load_feature_cache(cache.path))


def test_a_complete_text_cache_rebuilds_its_query_texts(f200k_checkpoint, tmp_path):
    checkpoint = variant(f200k_checkpoint, tmp_path / "complete.pth", use_complete_text_query=True)
    cache = load_feature_cache(compute_and_save(checkpoint, tmp_path / "cache"))
    assert cache.manifest["text"]["use_complete_text_query"] is True
    assert (
        cache.queries["text"].tolist() == cache.target_captions == ["blue short skirtstarmark", "wool navy coat", "blue park skinny pants"]
    )
    assert [q.text for q in dataset_for_cache(cache).queries] == cache.target_captions


def test_a_cache_is_refused_on_other_data_of_the_same_size(f200k_checkpoint, fashion200k_tree, tmp_path):
    cache = load_feature_cache(compute_and_save(f200k_checkpoint, tmp_path / "cache"))
    moved = shutil.copytree(fashion200k_tree, tmp_path / "moved")
    assert len(dataset_for_cache(cache, moved)) == 6  # the same data set elsewhere is fine
    labels = moved / "labels" / "pants_test_detect_all.txt"
    labels.write_text(labels.read_text().replace("blue park", "navy park"))
    # Gallery order: jacket 22 23, pants 24 25, skirt 20 21 (label files sorted by name).
    with pytest.raises(CacheError, match="gallery caption 3 is 'blue park skinny pants' in the cache but 'navy park skinny pants'"):
        dataset_for_cache(cache, moved)


def test_captions_that_look_like_numbers_or_missing_values_round_trip_exactly(f200k_checkpoint, tmp_path):
    # An all-numeric-looking column is where pandas' type guessing turned "007" into 7 and "1e5" into 100000.0.
    captions = ["007", "1e5", "nan", "null", "None", "NA"]
    files = [f"women/pants/odd/{30 + i}/{30 + i}_0.jpeg" for i in range(len(captions))]
    tree = write_fashion200k(
        tmp_path / "odd", labels={("pants", "test"): list(zip(files, captions))}, queries=[(files[0], files[1]), (files[2], files[0])]
    )
    cache = load_feature_cache(compute_and_save(f200k_checkpoint, tmp_path / "cache", dataset_path=str(tree)))
    assert cache.gallery_captions == captions
    assert cache.target_captions == ["1e5", "007"]
    assert cache.queries["text"].tolist() == ["replace 007 with 1e5", "replace nan with 007"]
    assert len(dataset_for_cache(cache)) == len(captions)  # which compares every caption and text with the loader's


@pytest.fixture(scope="module")
def fiq_checkpoint(fashioniq_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint("fashioniq", fashioniq_tree, tmp_path_factory.mktemp("fiq_run"))


@pytest.fixture(scope="module")
def fiq_cache(fiq_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FashionIQ cache with hand-built features (the cache format allows any normalised rows).

    Gallery (the val split lists, in category order): 0 D1, 1 D2, 2 D3, 3 X (dress), 4 S1, 5 S2,
    6 X (shirt), 7 T1, 8 T2; gallery image i has feature e_i. Queries: 0 dress D1->D2, 1 dress
    D2->D3, 2 shirt S1->X, 3 toptee T1->T2.
    """
    cache_dir = compute_and_save(fiq_checkpoint, tmp_path_factory.mktemp("fiq") / "cache")
    gallery = np.eye(9, 16, dtype=np.float32)
    queries = np.zeros((4, 16), np.float32)
    queries[0, [0, 1]] = 1.0, 0.9  # its own source D1 first, then the target D2
    queries[1, 2] = 1.0  # the target D3 first
    queries[2, [3, 6]] = 1.0, 0.9  # X listed under dress, then X listed under shirt (the target)
    queries[3, 8] = 1.0  # the target T2 first
    np.save(cache_dir / "gallery_features.npy", gallery)
    np.save(cache_dir / "query_features.npy", queries / np.linalg.norm(queries, axis=1, keepdims=True))
    return cache_dir


def test_a_fashioniq_cache_is_compared_under_fashioniq_rules(fiq_cache):
    cache = load_feature_cache(fiq_cache)
    assert cache.manifest["protocol"] == {"exclude_source": False, "metric": "FashionIQDataset.retrieval_metrics", "extra_search_depth": 1}
    assert cache.manifest["dataset_options"] == {"categories": None, "join": None, "skip_missing_images": False}
    # FashionIQ: the source stays in the gallery (query 0 misses at 1), X counts once (query 2 hits at 1),
    # R@k is the mean over categories: R@1 = (dress 1/2 + shirt 1 + toptee 1) / 3 = 5/6, R@5 = 1.
    # TIRG's rules (source removed, caption match over all 4 queries) would give R@1 = 3/4.
    config = CompareConfig(n_repeats=1, n_queries=4, ks=(1, 5), lsh=(LSHConfig(n_bits=4, n_tables=2, probe_radius=1),), faiss=False)
    exact = compare_feature_cache(cache, config).summary.set_index("method").loc["exact"]
    assert exact["recall@1_mean"] == pytest.approx(5 / 6)
    assert exact["recall@5_mean"] == pytest.approx(1.0)
    dataset = dataset_for_cache(cache)
    assert metrics_from_features(cache.query_features, cache.gallery_features, dataset, ks=(1, 5))["R@1"] == pytest.approx(5 / 6)
    # A sample is scored on its own queries: query 0 (dress, target D2 second) and query 2 (shirt; X
    # twice is one ASIN, first) give R@1 = (0 + 1) / 2 over the two categories present, R@2 = 1.
    assert DatasetScore(dataset)(np.array([0, 2]), np.array([[0, 1], [3, 6]]), (1, 2)) == {1: 0.5, 2: 1.0}
    # The retrieval view keeps the source too: query 0's first result is its own source image.
    assert cache_query(cache, 0, k=2).ids == [0, 1]


def test_old_caches_are_refused_with_the_command_that_recomputes_them(fiq_cache, tmp_path):
    old = shutil.copytree(fiq_cache, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    for field in ("dataset_options", "text", "protocol"):
        del manifest[field]
    (old / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(
        CacheError, match=rf"version 1, this tirg reads version 2 .*python compute_and_save.py --checkpoint .* --out {old} --overwrite"
    ):
        load_feature_cache(old)


def test_learned_hash_cache_must_come_from_the_same_checkpoint(fiq_checkpoint, tmp_path, capsys):
    checkpoint = fiq_checkpoint
    retrained = variant(checkpoint, tmp_path / "retrained.pth", comment="retrained")
    test_cache = compute_and_save(checkpoint, tmp_path / "test_cache")
    train_cache = compute_and_save(retrained, tmp_path / "train_cache", split="train")
    with pytest.raises(
        CacheError, match=rf"--learned-hash-cache {train_cache} comes from checkpoint {retrained} .* but {test_cache} from {checkpoint}"
    ):
        check_same_checkpoint(load_feature_cache(test_cache), load_feature_cache(train_cache), "--learned-hash-cache")
    script = root_script("lsh")
    argv = ["--cache", str(test_cache), "--learned-hash-cache", str(train_cache), "--out", str(tmp_path / "lsh"), "--no-faiss"]
    assert script.main(argv) == 2
    error = capsys.readouterr().err
    assert str(retrained) in error and str(checkpoint) in error
    assert not (tmp_path / "lsh").exists()
