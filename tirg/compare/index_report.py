"""An opened index (tirg.index.opened) beside exact search on its cache, through the comparison of lsh.py.

The same random query samples, task recall@k under the data set's rules, top-k overlap with exact
search and query time as `lsh.py` reports (tirg.compare.runner.compare_feature_cache), plus the index's
size on disk, bytes per vector, load time and the process's resident memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tirg.compare.config import CompareConfig, ks_up_to
from tirg.compare.methods import IndexMethod, Method, index_method_name
from tirg.compare.runner import compare_feature_cache
from tirg.data import RetrievalDataset
from tirg.features import FeatureCache
from tirg.index.opened import OpenedIndex


def compare_index(
    opened: OpenedIndex,
    cache: FeatureCache,
    dataset: RetrievalDataset,
    *,
    n_queries: int,
    n_repeats: int,
    k: int,
    seed: int,
    rerank: int = 0,
) -> dict[str, Any]:
    """Search n_repeats seeded samples of n_queries with exact search and the index; the report as a JSON-ready dict.

    rerank: score the index's best `rerank` again exactly (OpenedIndex.search).
    """
    config = CompareConfig(n_repeats=n_repeats, n_queries=n_queries, ks=ks_up_to(k), seed=seed, lsh=(), faiss=False)
    method = Method(index_method_name(opened, rerank), f"index-{opened.kind}", lambda gallery, seed: IndexMethod(opened, rerank))
    comparison = compare_feature_cache(cache, config, [method], dataset)
    ks, sample = comparison.ks, min(n_queries, len(cache.query_features))
    methods = {}
    for _, row in comparison.summary.iterrows():
        methods[row["method"]] = {
            **{f"recall@{kk}": _mean_and_std(row, f"recall@{kk}") for kk in ks},
            f"overlap@{max(ks)}_with_exact": _mean_and_std(row, f"overlap@{max(ks)}"),
            "seconds_per_1000_queries": _mean_and_std(row, "query_s", 1000 / sample),
            "compared_per_query": float(row["candidates_mean"]),
        }
    n_gallery = opened.manifest["num_gallery"]
    return {
        "index": [str(p) for p in opened.paths],
        "cache": str(cache.path),
        "kind": opened.kind,
        "factory": opened.manifest.get("factory"),
        "search_settings": {**opened.search_settings, "rerank": rerank},
        "shards": len(opened.shards) or 1,
        "memory_mapped": opened.mmap,
        "gallery": n_gallery,
        "dim": opened.manifest["dim"],
        "index_bytes": opened.bytes,
        "bytes_per_vector": opened.bytes / n_gallery,
        "load_s": opened.load_s,
        "queries_per_sample": sample,
        "samples": n_repeats,
        "methods": methods,
        "rss_mb": _status_mb("VmRSS"),
        "peak_rss_mb": _status_mb("VmHWM"),
    }


def _mean_and_std(row: Any, column: str, scale: float = 1.0) -> dict[str, float | None]:
    """The summary's mean and std of `column` as JSON numbers (std None for a single sample)."""
    std = row[f"{column}_std"]
    return {"mean": float(row[f"{column}_mean"]) * scale, "std": None if np.isnan(std) else float(std) * scale}


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM peak), in MiB; None off Linux."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None
