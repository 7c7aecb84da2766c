"""Recall-versus-time comparison of exact search, LSH settings and FAISS peers on one feature set.

R random samples of Q queries (without replacement, seeded) are searched by every
method; a split with fewer than Q queries is bootstrapped instead (each sample draws as many
queries as the split holds, with replacement, as the course project drew), so the samples differ
and their spread estimates the sampling error. Each sample is searched by exact search first, whose top-k is the reference
for the overlap of the others. Methods are interleaved within a sample so that
load on a shared machine spreads over all of them. Randomised methods (LSH) are
rebuilt for every sample with hyperplanes drawn from (seed, sample index), so the
spread over samples covers both the query sampling and the hash functions. The
result is one row per (method, sample) and a summary with mean and std per method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from tirg.compare.config import CompareConfig
from tirg.compare.methods import Method, Searcher, methods_for
from tirg.compare.sampling import bootstrap_config, draw_samples, repeat_seed, sampling_caption
from tirg.data import RetrievalDataset
from tirg.features import FeatureCache, dataset_for_cache
from tirg.index.checks import as_exclude, as_features
from tirg.metrics import recall_at_ks

logger = logging.getLogger(__name__)


class Score(Protocol):
    """Task recall@k of sampled queries from their ranked ids, and how deep to search for it."""

    def depth(self, ks: Sequence[int]) -> int: ...

    def __call__(self, rows: np.ndarray, ids: np.ndarray, ks: Sequence[int]) -> dict[int, float]: ...


@dataclass(frozen=True)
class DatasetScore:
    """Task recall@k of a sample of queries under the data set's own rules, and how deep to search for it.

    `retrieval_metrics` decides what a hit is (TIRG's caption match; FashionIQ's target ASIN after
    de-duplication, averaged over categories) and `search_depth` how many ids that needs.
    """

    dataset: RetrievalDataset

    def depth(self, ks: Sequence[int]) -> int:
        return self.dataset.search_depth(ks)

    def __call__(self, rows: np.ndarray, ids: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
        """recall@k for each k of queries `rows`, from their ranked gallery ids [len(rows), depth]."""
        metrics = self.dataset.query_subset(rows).retrieval_metrics(ids, ks)
        return {k: metrics[f"R@{k}"] for k in ks}


@dataclass(frozen=True)
class LabelScore:
    """TIRG's caption match: a result is a hit when its label is the query target's label."""

    target_labels: np.ndarray  # int [n], one per query
    gallery_labels: np.ndarray  # int [N]

    def depth(self, ks: Sequence[int]) -> int:
        return max(ks)

    def __call__(self, rows: np.ndarray, ids: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
        return recall_at_ks(ids, self.target_labels[rows], self.gallery_labels, ks)


@dataclass(frozen=True)
class Comparison:
    runs: pd.DataFrame  # one row per (method, sample)
    summary: pd.DataFrame  # one row per method: *_mean and *_std columns, build_s, bucket statistics
    ks: tuple[int, ...]  # the recall cut-offs measured (the config's, capped at the gallery)
    sampling: str  # how the query samples were drawn, for a table's caption (`sampling_caption`)


def capped_ks(ks: Sequence[int], n_gallery: int, excluding: bool) -> tuple[int, ...]:
    """The cut-offs with the deepest capped at what the gallery holds once a query's source is excluded."""
    deepest = n_gallery - (1 if excluding else 0)
    if deepest < 1:
        raise ValueError(f"the gallery has {n_gallery} item(s): nothing is left to retrieve after excluding the source")
    return tuple(sorted({min(k, deepest) for k in ks}))


def run_comparison(
    queries: np.ndarray,
    gallery: np.ndarray,
    exclude: np.ndarray | None,
    target_labels: np.ndarray | None,
    gallery_labels: np.ndarray | None,
    config: CompareConfig,
    methods: Sequence[Method] | None = None,
    score: Score | None = None,
) -> Comparison:
    """Search R samples of Q queries with every method; time build and query, score recall and overlap.

    Args:
        queries: float32 [n, d] all query features (samples are drawn from these rows).
        gallery: float32 [N, d] gallery features (may be memory-mapped).
        exclude: int [n] gallery id each query must not return (its source image), -1 none; or None.
        target_labels: int [n] label of each query's target; gallery_labels: int [N] (TIRG's caption
            match); both None when `score` is given.
        methods: defaults to methods_for(config, N); the first must be exact search (the overlap reference).
        score: a data set's own recall@k and search depth, instead of the labels.
    """
    gallery = as_features("gallery", gallery)
    queries = as_features("queries", queries, dim=gallery.shape[1])
    exclude = as_exclude(exclude, len(queries), len(gallery))
    scorer = score if score is not None else _label_score(target_labels, gallery_labels, len(queries), len(gallery))
    methods = list(methods) if methods is not None else methods_for(config, len(gallery))
    if methods[0].family != "exact":
        raise ValueError(f"the first method must be exact search (the overlap reference), got {methods[0].name!r}")
    ks = capped_ks(config.ks, len(gallery), exclude is not None)
    if ks != tuple(sorted(set(config.ks))):
        logger.info("the gallery has %d items: recall cut-offs %s instead of %s", len(gallery), ks, config.ks)
    # A whole gallery holds every distinct item, so searching deeper than it never changes a score.
    depth = max(max(ks), min(scorer.depth(ks), len(gallery) - (exclude is not None)))
    shared = _build_all([m for m in methods if not m.per_repeat], gallery, config.seed)
    rows = []
    for repeat, sample in enumerate(draw_samples(len(queries), config.n_queries, config.n_repeats, config.seed, config.bootstrap)):
        fresh = _build_all([m for m in methods if m.per_repeat], gallery, repeat_seed(config.seed, repeat))
        built = {False: iter(shared), True: iter(fresh)}
        searchers = [next(built[method.per_repeat]) for method in methods]
        sample_exclude = None if exclude is None else exclude[sample]
        rows += _search_sample(methods, searchers, queries[sample], sample, sample_exclude, repeat, depth, ks, scorer)
    runs = pd.DataFrame(rows)
    sampling = sampling_caption(config.n_repeats, config.n_queries, len(queries), config.bootstrap)
    return Comparison(runs=runs, summary=summarize(runs), ks=ks, sampling=sampling)


def _label_score(target_labels: np.ndarray | None, gallery_labels: np.ndarray | None, n_queries: int, n_gallery: int) -> LabelScore:
    if len(target_labels) != n_queries or len(gallery_labels) != n_gallery:
        raise ValueError(
            f"target_labels ({len(target_labels)}) and gallery_labels ({len(gallery_labels)}) must match "
            f"the queries ({n_queries}) and gallery ({n_gallery})"
        )
    return LabelScore(np.asarray(target_labels), np.asarray(gallery_labels))


def _build_all(methods: Sequence[Method], gallery: np.ndarray, seed: int) -> list[tuple[Searcher, float]]:
    """Each method's searcher on the gallery, with the seconds its build took."""
    built = []
    for method in methods:
        start = time.perf_counter()
        searcher = method.build(gallery, seed)
        built.append((searcher, time.perf_counter() - start))
        logger.info("built %s in %.2f s", method.name, built[-1][1])
    return built


def _search_sample(
    methods: Sequence[Method],
    searchers: Sequence[tuple[Searcher, float]],
    queries: np.ndarray,
    rows: np.ndarray,
    exclude: np.ndarray | None,
    repeat: int,
    depth: int,
    ks: tuple[int, ...],
    score: Score,
) -> list[dict]:
    """One sample through every method in turn (exact search first, the overlap reference): one row each."""
    k = max(ks)
    reference = None  # exact search's top-k on this sample
    measured = []
    for method, (search, build_s) in zip(methods, searchers):
        start = time.perf_counter()
        out = search(queries, depth, exclude)
        query_s = time.perf_counter() - start
        n_compared = out.n_compared if out.n_compared is not None else search.count(queries)
        reference = out.ids[:, :k] if reference is None else reference
        recalls = score(rows, out.ids, ks)
        measured.append(
            {
                "method": method.name,
                "family": method.family,
                "repeat": repeat,
                "build_s": build_s,
                "query_s": query_s,
                **{f"recall@{kk}": value for kk, value in recalls.items()},
                f"overlap@{k}": top_k_overlap(out.ids[:, :k], reference),
                "candidates": float(n_compared.mean()),
                **getattr(search, "stats", {}),
            }
        )
        logger.info("repeat %d %s: %.3f s, recall@%d %.3f", repeat, method.name, query_s, k, recalls[k])
    return measured


def top_k_overlap(ids: np.ndarray, reference: np.ndarray) -> float:
    """Mean over queries of |ids_i intersect reference_i| / k; -1 slots never count."""
    k = reference.shape[1]
    offset = np.arange(len(ids))[:, None] * (int(max(ids.max(), reference.max())) + 1)
    found = np.where(ids >= 0, ids + offset, -1)
    wanted = np.where(reference >= 0, reference + offset, -2)
    return float(np.isin(found, wanted).sum() / (len(ids) * k))


BUCKET_COLUMNS = ("nonempty_buckets_mean", "bucket_size_median", "bucket_size_max")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over samples of every measured column, one row per method, in the order first seen.

    build_s and the LSH bucket statistics (NaN for other methods) are means over the samples.
    """
    described = ["build_s", *(c for c in BUCKET_COLUMNS if c in runs.columns)]
    measured = [c for c in runs.columns if c not in ("method", "family", "repeat", *described)]
    grouped = runs.groupby(["method", "family"], sort=False)
    summary = grouped[measured].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    for column in ("build_s", *BUCKET_COLUMNS):
        summary[column] = grouped[column].mean() if column in runs.columns else np.nan
    return summary.reset_index()


def compare_feature_cache(
    cache: FeatureCache, config: CompareConfig, extra_methods: Sequence[Method] = (), dataset: RetrievalDataset | None = None
) -> Comparison:
    """`run_comparison` on a feature cache under its data set's protocol (source excluded or not, its recall@k).

    A cache with fewer queries than `config.n_queries` is sampled by bootstrap (`bootstrap_config`).

    dataset: the cache's data set (`dataset_for_cache`); None rebuilds it from the manifest.
    extra_methods run after the config's own (e.g. learned_vs_random_methods).
    """
    dataset = dataset if dataset is not None else dataset_for_cache(cache)
    config = bootstrap_config(config, len(cache.query_features))
    exclude = np.asarray(cache.query_sources) if cache.exclude_source else None
    return run_comparison(
        np.asarray(cache.query_features), np.asarray(cache.gallery_features), exclude, None, None, config,
        methods_for(config, len(cache.gallery_features)) + list(extra_methods), score=DatasetScore(dataset),
    )  # fmt: skip
