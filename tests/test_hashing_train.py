from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hashing_fixtures import write_cub

from tirg.cli import main
from tirg.compare import CompareConfig, Method, build_exact, learned_vs_random_methods, learned_vs_random_table, run_comparison
from tirg.hashing.codes import hamming_rank, pack_codes, sign_codes
from tirg.hashing.composed import ComposedHashConfig, train_hash_head
from tirg.hashing.metrics import precision_at_k
from tirg.plots.comparison import plot_learned_vs_random


def test_cli_train_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_cub(tmp_path / "CUB_200_2011", n_classes=4, per_class=6, n_train_per_class=4)
    run = tmp_path / "run"
    argv = [
        "hash",
        "train",
        "--dataset_name",
        "CUB",
        "--dataset_path",
        str(root),
        "--binary_bits",
        "16",
        "--lr",
        "0.001",
        "--batchSize",
        "8",
        "--classes_per_batch",
        "2",
        "--num_epochs",
        "2",
        "--optimizer_name",
        "Adam",
        "--ngpu",
        "1",
        "--image_size",
        "32",
        "--eval_every",
        "1",
        "--out",
        str(run),
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["final"]["n_queries"] == 8 and report["final"]["n_database"] == 16
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert report["best_map_all_during_training (selected on the test set)"] == max(h["map_all"] for h in history)
    assert report["final"]["map_all"] == history[-1]["map_all"]
    assert main(["hash", "eval", "--checkpoint", str(run / "checkpoint.pth")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["map_all"] == pytest.approx(report["final"]["map_all"])  # same codes: eval transform, no randomness
    before = (run / "checkpoint.pth").read_bytes()
    assert main(argv) == 2  # its own earlier run is replaced only with --overwrite
    assert "already holds a hashing run; pass --overwrite" in capsys.readouterr().err
    assert (run / "checkpoint.pth").read_bytes() == before


def test_cli_rejects_a_batch_that_is_not_whole_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", "train", "--batchSize", "85", "--dataset_path", str(tmp_path)]) == 2
    assert "batch_size=85 must be a multiple of classes_per_batch=10 (--batchSize)" in capsys.readouterr().err


def clustered(rng: np.random.Generator, centres: np.ndarray, labels: np.ndarray, noise: float) -> np.ndarray:
    x = centres[labels] + noise * rng.standard_normal((len(labels), centres.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_learned_head_beats_random_hyperplanes_at_equal_bits(tmp_path: Path) -> None:
    # Labels live in 8 of 64 dimensions and queries carry noise in the other 56: learned planes
    # keep the label structure in 8 bits, random planes spend most of each bit on the noise.
    rng = np.random.default_rng(0)
    dim, n_labels, bits = 64, 40, 8
    centres = rng.standard_normal((n_labels, dim)) * np.r_[np.ones(8), 0.05 * np.ones(dim - 8)]

    def queries_of(labels: np.ndarray) -> np.ndarray:
        noise = 0.6 * rng.standard_normal((len(labels), dim)) * np.r_[np.zeros(8), np.ones(dim - 8)]
        return (clustered(rng, centres, labels, 0.05) + noise).astype(np.float32)

    train_labels = rng.integers(0, n_labels, 2000)
    head = train_hash_head(queries_of(train_labels), clustered(rng, centres, train_labels, 0.05), train_labels,
                           ComposedHashConfig(bits=bits, epochs=10))  # fmt: skip
    gallery_labels = np.repeat(np.arange(n_labels), 10)
    gallery = clustered(rng, centres, gallery_labels, 0.05)
    query_labels = rng.integers(0, n_labels, 300)
    queries = queries_of(query_labels)

    def hamming_precision(planes: np.ndarray) -> float:
        _, ids = hamming_rank(pack_codes(sign_codes(queries @ planes.T)), pack_codes(sign_codes(gallery @ planes.T)), 10)
        return precision_at_k(ids, query_labels, gallery_labels, 10)

    learned = hamming_precision(head.planes)
    random_ = hamming_precision(rng.standard_normal((bits, dim)).astype(np.float32))
    assert learned > 2 * random_ + 0.05  # measured: 0.194 against 0.065

    # Both run through the comparison runner as methods of the same LSH index.
    config = CompareConfig(n_repeats=1, n_queries=300, ks=(1, 10), lsh=(), faiss=False)
    methods = [Method("exact", "exact", build_exact)] + learned_vs_random_methods([head.planes], radii=(0, 1))
    comparison = run_comparison(queries, gallery, None, query_labels, gallery_labels, config, methods)
    assert set(comparison.summary["method"]) == {
        "exact",
        "learned b=8 r=0",
        "learned b=8 r=1",
        "lsh b=8 L=1 r=0 (random)",
        "lsh b=8 L=1 r=1 (random)",
    }
    table = learned_vs_random_table(comparison.summary, k=10)
    assert "| 8 | 1 |" in table
    path = plot_learned_vs_random(comparison.summary, tmp_path / "learned.png", k=10)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
