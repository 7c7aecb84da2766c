"""The demo pipeline behind `make demo`: generate CSS, train TIRG and its baselines, evaluate, plot.

Each model is trained with the same data, seed and iteration budget, then evaluated on the
test split (whose scenes use compositions never seen in training).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from tirg.checkpoint import CHECKPOINT_NAME
from tirg.config import TrainConfig
from tirg.data import CSSGeneratorConfig, RetrievalDataset, generate_css, load_dataset
from tirg.data.css_generate import CSS_DATA, DESCRIPTION_FILE
from tirg.features import FeatureCache, compute_and_save, load_feature_cache
from tirg.fileio import atomic_directory, atomic_write, atomic_write_text, check_output_dir, check_output_file, marked_kind
from tirg.plots.model_recall import plot_recall_per_model
from tirg.plots.retrieval_figures import cache_query_figure
from tirg.plots.save import save_figure
from tirg.runtime import resolve_device, seed_everything
from tirg.training import train

logger = logging.getLogger(__name__)

DEMO_RESULTS = marked_kind("demo results folder", "tirg-demo-results", ("runs", "recall.csv", "recall.md", "features", "lsh"))
# The figures the demo writes into images_dir (the README shows them).
DEMO_FIGURES = ("recall_per_model.png", "retrieval_example.png", "lsh_recall_vs_time.png", "lsh_recall_at_k.png")


@dataclass
class DemoConfig:
    data_dir: str = "data/css"
    results_dir: str = "results/demo"
    images_dir: str = "images"
    models: tuple[str, ...] = ("tirg", "concat", "imgonly", "textonly")
    lsh_repeats: int = 5
    lsh_queries: int = 5000  # capped at the test split's number of queries
    loss: str = "batch_based_classification"
    num_iters: int = 250
    batch_size: int = 32
    learning_rate: float = 1e-2
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False  # replace the demo's own earlier results and figures
    data: CSSGeneratorConfig = field(default_factory=CSSGeneratorConfig)


def recall_markdown(table: pd.DataFrame) -> str:
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.itertuples(index=False):
        cells = [f"{value:.3f}" if name.startswith("R@") else str(value) for name, value in zip(columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def check_demo_outputs(config: DemoConfig) -> None:
    """Refuse, before any work, a data, results or figure destination whose contents the demo did not write."""
    data_dir = Path(config.data_dir)
    if not (data_dir / DESCRIPTION_FILE).exists():
        check_output_dir(data_dir, CSS_DATA)
    check_output_dir(config.results_dir, DEMO_RESULTS, config.overwrite)
    for name in DEMO_FIGURES:
        check_output_file(Path(config.images_dir) / name, config.overwrite)


def run_demo(config: DemoConfig, progress: bool = False) -> pd.DataFrame:
    """Run the whole demo; returns the recall table (also written to results_dir).

    The training runs and recall tables are written into a staging folder that replaces
    results_dir when they are complete; the feature cache and search comparison follow in it.
    """
    check_demo_outputs(config)
    data_dir = Path(config.data_dir)
    if not (data_dir / DESCRIPTION_FILE).exists():
        logger.info("generating the CSS data set in %s", data_dir)
        generate_css(data_dir, config.data)
    results_dir = Path(config.results_dir)
    with atomic_directory(results_dir, DEMO_RESULTS, config.overwrite) as staging:
        table = _train_models(config, data_dir, staging, progress)
        atomic_write_text(staging / "recall.csv", table.to_csv(index=False))
        atomic_write_text(staging / "recall.md", recall_markdown(table))
    images_dir = Path(config.images_dir)
    plot_recall_per_model(table, images_dir / "recall_per_model.png")
    if "tirg" in config.models:
        # One pass over the test images serves the retrieval example and the search comparison.
        checkpoint = results_dir / "runs" / "tirg" / CHECKPOINT_NAME
        cache_dir = compute_and_save(checkpoint, results_dir / "features" / "css_test", device=resolve_device(config.device))
        cache = load_feature_cache(cache_dir, checkpoint=checkpoint)
        save_retrieval_example(cache, load_dataset("css", data_dir, "test"), images_dir / "retrieval_example.png", config.seed)
        compare_search_methods(cache, results_dir, images_dir, config)
    return table


def _train_models(config: DemoConfig, data_dir: Path, results_dir: Path, progress: bool) -> pd.DataFrame:
    """Train each model into results_dir/runs/<model> with the same data, seed and budget; their test recall."""
    rows = []
    for model in config.models:
        seed_everything(config.seed)
        train_config = TrainConfig(
            dataset="css", dataset_path=str(data_dir), model=model, loss=config.loss, num_iters=config.num_iters,
            batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed, device=config.device,
            log_dir=str(Path(config.results_dir) / "runs"), comment=model, checkpoint_every=config.num_iters,
        )  # fmt: skip
        started = time.perf_counter()
        result = train(train_config, run_dir=results_dir / "runs" / model, progress=progress)
        rows.append({"model": model, **result.metrics, "train_seconds": round(time.perf_counter() - started, 1)})
    return pd.DataFrame(rows)


def compare_search_methods(cache: FeatureCache, results_dir: Path, images_dir: Path, config: DemoConfig) -> str:
    """Compare exact search with LSH (and FAISS when installed) on a feature cache."""
    from tirg.compare import CompareConfig, compare_feature_cache, fastest_lsh_within_recall, two_row_table
    from tirg.plots.comparison_report import write_outputs

    compare_config = CompareConfig(
        n_repeats=config.lsh_repeats, n_queries=config.lsh_queries, seed=config.seed, faiss=importlib.util.find_spec("faiss") is not None
    )
    comparison = compare_feature_cache(cache, compare_config)
    written = write_outputs(comparison, results_dir / "lsh", compare_config.overlap_target, compare_config.ks)
    for path in written:
        if path.suffix == ".png":
            atomic_write(images_dir / f"lsh_{path.name}", partial(_write_bytes, path.read_bytes()))
    table = two_row_table(comparison.summary, compare_config.overlap_target, max(compare_config.ks), comparison.sampling)
    within = fastest_lsh_within_recall(comparison.summary, k=100, max_gap=0.01)
    exact = comparison.summary[comparison.summary["family"] == "exact"].iloc[0]
    closest = {
        "exact_recall@100": float(exact["recall@100_mean"]),
        "exact_query_s": float(exact["query_s_mean"]),
        "fastest_lsh_within_1_point": None if within is None else {
            "method": within["method"],
            "recall@100": float(within["recall@100_mean"]),
            "query_s": float(within["query_s_mean"]),
            "candidates_per_query": float(within["candidates_mean"]),
        },
    }  # fmt: skip
    atomic_write_text(results_dir / "lsh" / "within_1_point.json", json.dumps(closest, indent=2))
    logger.info("search methods on the CSS test cache:\n%s\nfastest LSH within 1 point of exact R@100: %s", table, closest)
    return table


def save_retrieval_example(cache: FeatureCache, testset: RetrievalDataset, path: Path, seed: int, top_k: int = 8) -> Path:
    """A random test query (seeded) with its top-k results from the cached features, hits marked, in one row."""
    query_index = int(np.random.default_rng(seed).integers(len(testset.queries)))
    return save_figure(cache_query_figure(cache, testset, query_index, top_k, columns=top_k), path)


def _write_bytes(data: bytes, file: IO[bytes]) -> None:
    file.write(data)
