"""`tirg index build/search` on real caches of the Fashion200k and MIT-States fixture trees: a flat
index reports the recall that the data set's own protocol gives (its targets, its source exclusion)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("faiss")

from test_cache_protocol import tiny_checkpoint

from tirg.cli import main
from tirg.evaluate import metrics_from_features
from tirg.features import compute_and_save, dataset_for_cache, load_feature_cache


@pytest.mark.parametrize("dataset", ["fashion200k", "mitstates"])
def test_a_flat_index_reports_the_data_sets_own_recall(dataset, request, tmp_path, capsys):
    tree = request.getfixturevalue(f"{dataset}_tree")
    cache = load_feature_cache(compute_and_save(tiny_checkpoint(dataset, tree, tmp_path / "run"), tmp_path / "cache"))
    n_queries = len(cache.query_features)

    assert main(["index", "build", "--cache", str(cache.path), "--kind", "flat", "--out", str(tmp_path / "index")]) == 0
    capsys.readouterr()
    search = ["index", "search", "--index", str(tmp_path / "index"), "--cache", str(cache.path), "--k", "3"]
    assert main([*search, "--queries", str(n_queries), "--mmap"]) == 0
    report = json.loads(capsys.readouterr().out)

    # Every query, once: the sample is the split, so its recall is the protocol's, for exact search and the index alike.
    assert report["queries_per_sample"] == n_queries and report["gallery"] == len(cache.gallery_features)
    ks = sorted(int(name.split("@")[1]) for name in report["methods"]["exact"] if name.startswith("recall@"))
    assert ks[0] == 1 and ks[-1] == 3
    expected = metrics_from_features(cache.query_features, cache.gallery_features, dataset_for_cache(cache), ks=ks)
    for method in ("exact", "Flat"):
        for k in ks:
            assert report["methods"][method][f"recall@{k}"]["mean"] == pytest.approx(expected[f"R@{k}"], abs=1e-9), (method, k)
    assert report["methods"]["Flat"]["overlap@3_with_exact"]["mean"] == 1.0
