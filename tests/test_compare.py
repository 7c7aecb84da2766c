"""The comparison runner, its tables and plots, and the FAISS peers."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import root_script

from tirg.compare import (
    DEFAULT_LSH_GRID,
    CompareConfig,
    Method,
    acceptance,
    best_lsh,
    bootstrap_config,
    capped_ks,
    draw_samples,
    fastest_lsh_within_recall,
    ks_up_to,
    lsh_grid,
    methods_for,
    pareto_front,
    repeat_seed,
    run_comparison,
    sampling_caption,
    top_k_overlap,
    two_row_table,
)
from tirg.index import LSHConfig, LSHIndex, exact_search
from tirg.index.faiss_peers import import_faiss
from tirg.plots.comparison import method_styles, recall_vs_time_figure
from tirg.plots.comparison_report import write_outputs


def _task(n_gallery: int = 600, n_queries: int = 120, dim: int = 16, seed: int = 0):
    """Clustered gallery with 3 items per label; each query is a noisy copy of its target item."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((12, dim))
    gallery_labels = np.arange(n_gallery) // 3
    label_centers = centers[rng.integers(0, 12, n_gallery // 3)] + 0.5 * rng.standard_normal((n_gallery // 3, dim))
    gallery = (label_centers[gallery_labels] + 0.3 * rng.standard_normal((n_gallery, dim))).astype(np.float32)
    targets = rng.integers(0, n_gallery, n_queries)
    queries = (gallery[targets] + 0.3 * rng.standard_normal((n_queries, dim))).astype(np.float32)
    sources = rng.integers(0, n_gallery, n_queries)
    return queries, gallery, sources, gallery_labels[targets], gallery_labels


def _small_config(**overrides) -> CompareConfig:
    settings = dict(
        n_repeats=2,
        n_queries=50,
        ks=(1, 5, 10),
        lsh=(LSHConfig(n_bits=4, n_tables=1), LSHConfig(n_bits=6, n_tables=4, probe_radius=1)),
        faiss=False,
    )
    settings.update(overrides)
    return CompareConfig(**settings)


def test_comparison_rows_are_consistent_with_exact_search() -> None:
    queries, gallery, sources, targets, labels = _task()
    comparison = run_comparison(queries, gallery, sources, targets, labels, _small_config())
    runs, summary = comparison.runs, comparison.summary
    assert len(runs) == 3 * 2
    assert list(summary["method"]) == ["exact", "lsh b=4 L=1 r=0", "lsh b=6 L=4 r=1"]
    exact = summary.iloc[0]
    assert exact["overlap@10_mean"] == 1.0 and exact["candidates_mean"] == len(gallery)
    # Recall of exact search on the first sample, computed independently.
    sample = draw_samples(len(queries), 50, 2, seed=0)[0]
    _, ids = exact_search(queries[sample], gallery, 10, exclude=sources[sample])
    expected = np.mean([(labels[row] == targets[i]).any() for i, row in zip(sample, ids)])
    assert runs.iloc[0]["recall@10"] == pytest.approx(expected)
    lsh = summary[summary["family"] == "lsh"]
    assert (lsh["candidates_mean"] <= len(gallery)).all() and (lsh["overlap@10_mean"] <= 1).all()
    assert (lsh["nonempty_buckets_mean"] >= 1).all()
    assert (summary["query_s_mean"] > 0).all() and (summary["build_s"] >= 0).all()


def test_samples_are_seeded_and_without_replacement() -> None:
    samples = draw_samples(100, 60, 3, seed=5)
    assert all(len(np.unique(s)) == 60 for s in samples)
    assert not np.array_equal(samples[0], samples[1])
    np.testing.assert_array_equal(samples[2], draw_samples(100, 60, 3, seed=5)[2])
    with pytest.raises(ValueError, match="n_queries=101"):
        draw_samples(100, 101, 1, seed=0)


def test_a_split_no_larger_than_the_sample_is_bootstrapped_so_the_spread_is_real() -> None:
    config = _small_config(n_repeats=4, n_queries=50)
    assert bootstrap_config(config, 51) == config
    assert bootstrap_config(config, 50) == config  # asking for the whole split
    assert bootstrap_config(config, 30) == replace(config, n_queries=30, bootstrap=True)
    samples = draw_samples(30, 30, 4, seed=0, bootstrap=True)
    assert all(len(s) == 30 and len(np.unique(s)) < 30 for s in samples)  # with replacement: repeats
    assert not np.array_equal(samples[0], samples[1])
    queries, gallery, sources, targets, labels = _task(n_queries=30)
    comparison = run_comparison(queries, gallery, sources, targets, labels, bootstrap_config(config, len(queries)))
    exact = comparison.summary.set_index("method").loc["exact"]
    assert exact["recall@1_std"] > 0 and exact["recall@10_std"] > 0
    # The same split drawn without replacement, whole, each time: no spread at all.
    whole = run_comparison(queries, gallery, sources, targets, labels, replace(config, n_queries=30))
    assert whole.summary.set_index("method").loc["exact", "recall@1_std"] == 0
    assert comparison.sampling == "mean ± std over 4 bootstrap samples of 30 queries (drawn with replacement from the split's 30)"
    assert whole.sampling == "mean ± std over 4 samples of 30 queries (distinct queries drawn from the split's 30)"
    assert sampling_caption(1, 5000, 33480, False) == "one sample of 5,000 queries (distinct queries drawn from the split's 33,480)"
    table = two_row_table(comparison.summary, 0.95, 10, comparison.sampling)
    assert table.splitlines()[-1] == "Mean ± std over 4 bootstrap samples of 30 queries (drawn with replacement from the split's 30)."


def test_recall_vs_time_figure_styles_every_method_and_draws_a_one_point_front() -> None:
    summary = _summary()
    styles = method_styles([f"lsh {i}" for i in range(40)] + ["exact"])
    assert len(set(styles.values())) == 41 and styles["exact"] == ("black", "*")
    figure = recall_vs_time_figure(summary)
    axes = figure.axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert sorted(legend) == sorted([*summary["method"], "Pareto front (ringed)"])
    drawn = {(c.lines[0].get_color(), c.lines[0].get_marker()) for c in axes.containers}
    assert len(drawn) == len(summary)  # one colour and marker per method
    front_line = next(line for line in axes.get_lines() if line.get_label() == "Pareto front (ringed)")
    assert len(front_line.get_xdata()) == 4 and front_line.get_marker() == "o"
    # One method beats all others: the front is that single point, still drawn (ringed).
    dominant = summary.copy()
    dominant.loc[0, ["query_s_mean", "recall@100_mean"]] = [0.1, 0.9]
    single = next(line for line in recall_vs_time_figure(dominant).axes[0].get_lines() if line.get_label() == "Pareto front (ringed)")
    assert list(single.get_xdata()) == [0.1] and single.get_marker() == "o" and single.get_markersize() > 0
    # Recall between 0.5 and 0.7: the axis shows that range, not 0 to 1.
    low, high = axes.get_ylim()
    assert 0.45 <= low < 0.5 and 0.7 < high <= 0.75


def test_top_k_overlap_counts_shared_ids_per_query() -> None:
    reference = np.array([[1, 2, 3], [4, 5, 6]])
    assert top_k_overlap(np.array([[3, 2, 9], [6, 5, 4]]), reference) == pytest.approx(5 / 6)
    assert top_k_overlap(np.array([[-1, -1, 1], [-1, -1, -1]]), reference) == pytest.approx(1 / 6)


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["exact", "lsh a", "lsh b", "lsh c", "faiss-flat"],
            "family": ["exact", "lsh", "lsh", "lsh", "faiss-flat"],
            "query_s_mean": [1.0, 0.5, 0.3, 0.2, 0.9],
            "query_s_std": [0.1] * 5,
            "recall@100_mean": [0.7, 0.69, 0.68, 0.5, 0.7],
            "recall@100_std": [0.01] * 5,
            "overlap@100_mean": [1.0, 0.97, 0.96, 0.6, 1.0],
            "candidates_mean": [1000, 300, 200, 100, 1000],
        }
    )


def test_pareto_front_keeps_only_undominated_methods() -> None:
    front = pareto_front(_summary(), "recall@100_mean")
    assert front.tolist() == [False, True, True, True, True]


def test_best_lsh_is_the_fastest_meeting_the_target_else_the_most_accurate_that_prunes() -> None:
    assert best_lsh(_summary(), "overlap@100_mean", 0.95)["method"] == "lsh b"
    assert best_lsh(_summary(), "overlap@100_mean", 0.99)["method"] == "lsh a"
    mostly_fallback = _summary().assign(candidates_mean=[1000, 900, 200, 100, 1000], query_s_mean=[1, 0.1, 0.3, 0.2, 1])
    assert best_lsh(mostly_fallback, "overlap@100_mean", 0.95)["method"] == "lsh b"
    assert best_lsh(mostly_fallback, "overlap@100_mean", 0.99)["method"] == "lsh b"


def test_fastest_lsh_within_recall_ignores_pruning() -> None:
    # Exact recall@100 is 0.70: "lsh a" (0.69) and "lsh b" (0.68) are within 0.02, b is faster.
    assert fastest_lsh_within_recall(_summary(), k=100, max_gap=0.02)["method"] == "lsh b"
    assert fastest_lsh_within_recall(_summary(), k=100, max_gap=0.01)["method"] == "lsh a"
    assert fastest_lsh_within_recall(_summary(), k=100, max_gap=0.001) is None
    # A setting that fell back to exact search for every query is not counted, however fast.
    all_fallback = _summary().assign(candidates_mean=[1000, 300, 1000, 100, 1000])
    assert fastest_lsh_within_recall(all_fallback, k=100, max_gap=0.02)["method"] == "lsh a"


def test_acceptance_ratios_and_two_row_table() -> None:
    result = acceptance(_summary(), 0.95)
    assert result["best_lsh"] == "lsh b" and result["lsh_target_met"]
    assert result["lsh_speedup_over_exact"] == pytest.approx(1 / 0.3)
    assert result["exact_over_faiss_flat_time"] == pytest.approx(1 / 0.9)
    table = two_row_table(_summary(), 0.95).splitlines()
    assert table[0] == "| | Recall (R@100) | Time (s) |"
    assert table[2] == "| Hashing, best project setting (lsh b) | 68.00 ± 1.00 | 0.300 ± 0.100 |"
    assert table[3] == "| No hashing (exact) | 70.00 ± 1.00 | 1.000 ± 0.100 |"


def test_table_has_the_original_protocol_row_and_no_spread_for_one_sample() -> None:
    original = pd.DataFrame(
        {
            "method": ["lsh orig"],
            "family": ["lsh-original"],
            "query_s_mean": [0.1],
            "query_s_std": [np.nan],
            "recall@100_mean": [0.3],
            "recall@100_std": [np.nan],
        }
    )
    summary = pd.concat([_summary().assign(query_s_std=np.nan, **{"recall@100_std": np.nan}), original])
    table = two_row_table(summary, 0.95).splitlines()
    assert table[2:] == [
        "| Hashing, original protocol (lsh orig) | 30.00 | 0.100 |",
        "| Hashing, best project setting (lsh b) | 68.00 | 0.300 |",
        "| No hashing (exact) | 70.00 | 1.000 |",
    ]


def test_the_original_protocol_is_its_own_family_beside_the_same_setting_under_the_project_protocol() -> None:
    families = {m.name: m.family for m in methods_for(CompareConfig(faiss=False), 1000)}
    assert families["lsh b=12 L=1 r=0 (original protocol)"] == "lsh-original"
    assert families["lsh b=12 L=1 r=0"] == "lsh"
    assert [c.protocol for c in lsh_grid("original", 10)] == ["original"] and lsh_grid("original", 10)[0].n_bits == 10
    assert lsh_grid("both") == DEFAULT_LSH_GRID
    assert all(c.protocol == "project" for c in lsh_grid("project"))
    queries, gallery, sources, targets, labels = _task()
    config = _small_config(lsh=(LSHConfig(n_bits=8, protocol="original"), LSHConfig(n_bits=8)))
    summary = run_comparison(queries, gallery, sources, targets, labels, config).summary.set_index("method")
    original, project = summary.loc["lsh b=8 L=1 r=0 (original protocol)"], summary.loc["lsh b=8 L=1 r=0"]
    # Most 8-bit buckets of 600 items hold fewer than 10: the project's protocol searches those
    # queries exhaustively, the original returns them with their few candidates.
    assert original["candidates_mean"] < project["candidates_mean"]
    assert original["recall@10_mean"] < project["recall@10_mean"]


def test_every_sample_draws_its_own_hyperplanes_from_the_seed_and_its_index() -> None:
    queries, gallery, sources, targets, labels = _task()
    config = _small_config(n_repeats=3, lsh=(LSHConfig(n_bits=6, n_tables=2),), seed=4)
    exact, lsh = methods_for(config, len(gallery))
    built: list = []
    spy = Method(lsh.name, lsh.family, lambda g, seed: built.append(lsh.build(g, seed)) or built[-1], lsh.per_repeat)
    runs = run_comparison(queries, gallery, sources, targets, labels, config, [exact, spy]).runs
    assert len(built) == 3
    planes = [b.index.planes for b in built]
    assert not np.allclose(planes[0], planes[1]) and not np.allclose(planes[1], planes[2])
    for repeat, index_planes in enumerate(planes):
        expected = LSHIndex.build(gallery, LSHConfig(n_bits=6, n_tables=2, seed=repeat_seed(4, repeat))).planes
        np.testing.assert_array_equal(index_planes, expected)
    assert repeat_seed(4, 0) != repeat_seed(5, 0)
    assert runs[runs["method"] == lsh.name]["nonempty_buckets_mean"].notna().all()


def test_cut_offs_are_capped_at_the_gallery() -> None:
    assert ks_up_to(100) == (1, 5, 10, 50, 100) and ks_up_to(10) == (1, 5, 10) and ks_up_to(7) == (1, 5, 7)
    assert capped_ks((1, 5, 10, 50, 100), 40, excluding=True) == (1, 5, 10, 39)
    assert capped_ks((1, 5, 100), 40, excluding=False) == (1, 5, 40)
    with pytest.raises(ValueError, match="k=0"):
        ks_up_to(0)
    queries, gallery, sources, targets, labels = _task(n_gallery=30, n_queries=20)
    comparison = run_comparison(queries, gallery, sources, targets, labels, _small_config(n_queries=10, ks=(1, 5, 100)))
    assert comparison.ks == (1, 5, 29)
    assert (comparison.summary["overlap@29_mean"] <= 1).all() and "recall@29_mean" in comparison.summary


def test_outputs_are_written(tmp_path) -> None:
    queries, gallery, sources, targets, labels = _task()
    config = _small_config(n_repeats=1)
    comparison = run_comparison(queries, gallery, sources, targets, labels, config)
    paths = write_outputs(comparison, tmp_path / "out", 0.95, config.ks)
    assert [p.name for p in paths] == ["summary.csv", "runs.csv", "table.md", "recall_vs_time.png", "recall_at_k.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert pd.read_csv(paths[0])["method"].tolist() == comparison.summary["method"].tolist()


def test_bad_comparison_input_is_rejected() -> None:
    queries, gallery, sources, targets, labels = _task()
    with pytest.raises(ValueError, match="n_queries=500"):
        run_comparison(queries, gallery, sources, targets, labels, _small_config(n_queries=500))
    with pytest.raises(ValueError, match="target_labels"):
        run_comparison(queries, gallery, sources, targets[:-1], labels, _small_config())
    with pytest.raises(ValueError, match="n_repeats=0"):
        _small_config(n_repeats=0)


def test_missing_faiss_gives_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(ImportError, match=r"pip install \"tirg\[faiss\]\""):
        import_faiss()


def test_faiss_peers_in_the_comparison() -> None:
    pytest.importorskip("faiss")
    from tirg.index.faiss_peers import faiss_flat_ip

    queries, gallery, sources, targets, labels = _task()
    _, expected = exact_search(queries, gallery, 10, exclude=sources)
    _, got = faiss_flat_ip(gallery).search(queries, 10, exclude=sources)
    np.testing.assert_array_equal(got, expected)

    config = _small_config(n_repeats=1, faiss=True, faiss_lsh_bits=(64,), ivf_lists=8, ivf_probes=(1, 8))
    summary = run_comparison(queries, gallery, sources, targets, labels, config).summary
    families = summary.set_index("method")["family"]
    assert families["faiss-flat"] == "faiss-flat" and families["faiss-lsh bits=64"] == "faiss-lsh"
    ivf = summary[summary["family"] == "faiss-ivf"].set_index("method")
    assert ivf.loc["faiss-ivf lists=8 probe=8", "candidates_mean"] == len(gallery)  # all lists probed
    assert ivf.loc["faiss-ivf lists=8 probe=8", "overlap@10_mean"] == 1.0
    assert ivf.loc["faiss-ivf lists=8 probe=1", "candidates_mean"] < len(gallery)
    assert summary.set_index("method").loc["faiss-flat", "overlap@10_mean"] == 1.0


def _tiny_cache(css_root, tmp_path):
    """The feature cache of a one-step checkpoint on the tiny CSS data set (a 40-image test gallery)."""
    from tirg.config import TrainConfig
    from tirg.features import compute_and_save
    from tirg.runtime import seed_everything
    from tirg.training import train

    seed_everything(0)
    config = TrainConfig(
        dataset_path=str(css_root), loss="batch_based_classification", embed_dim=16, batch_size=4, num_iters=1, device="cpu"
    )
    checkpoint = train(config, run_dir=tmp_path / "run", evaluate_test=False).checkpoint
    return compute_and_save(checkpoint, tmp_path / "cache")


def test_lsh_script_runs_on_a_40_item_gallery_with_k_10(tiny_css, tmp_path, capsys) -> None:
    lsh_script = root_script("lsh")
    cache = _tiny_cache(tiny_css, tmp_path)
    args = ["--cache", str(cache), "--out", str(tmp_path / "out"), "--queries", "20", "--no-faiss", "--overwrite"]
    assert lsh_script.main([*args, "--repeats", "2", "--k", "10"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert {"recall@10_mean", "overlap@10_mean"} <= set(summary.columns) and "recall@50_mean" not in summary
    assert "lsh b=12 L=1 r=0 (original protocol)" in set(summary["method"])
    printed = capsys.readouterr().out
    assert "Hashing, original protocol" in printed and "± " in printed
    # One sample: no spread to show. The default k=100 is capped at 39 (40 items, one excluded).
    assert lsh_script.main([*args, "--repeats", "1", "--protocol", "original", "--original-bits", "4"]) == 0
    printed = capsys.readouterr().out
    assert "R@39" in printed and "±" not in printed and "nan" not in printed
    assert lsh_script.main([*args, "--k", "0"]) == 2
    assert "k=0" in capsys.readouterr().err


def test_lsh_script_replaces_only_its_own_comparison_and_only_with_overwrite(tiny_css, tmp_path, capsys) -> None:
    lsh_script = root_script("lsh")
    cache = _tiny_cache(tiny_css, tmp_path)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    args = ["--cache", str(cache), "--queries", "10", "--repeats", "1", "--no-faiss", "--k", "10"]
    assert lsh_script.main([*args, "--out", str(foreign), "--overwrite"]) == 2
    assert "thesis.tex" in capsys.readouterr().err and (foreign / "thesis.tex").read_text() == "mine"
    out = tmp_path / "out"
    assert lsh_script.main([*args, "--out", str(out)]) == 0
    first = (out / "summary.csv").read_bytes()
    assert lsh_script.main([*args, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "summary.csv").read_bytes() == first
    assert lsh_script.main([*args, "--out", str(out), "--overwrite", "--seed", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["tirg-output.json", "summary.csv", "runs.csv", "table.md", "recall_vs_time.png", "recall_at_k.png"]
    )
