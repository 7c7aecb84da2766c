"""Recall-versus-time comparison of exact search, LSH settings and FAISS peers on one feature set.

R random samples of Q queries (without replacement, seeded) are searched by every
method; a split with fewer than Q queries is bootstrapped instead (each sample draws as many
queries as the split holds, with replacement, as the course project drew), so the samples differ
and their spread estimates the sampling error. each sample is searched by exact search first, whose top-k is the reference
for the overlap of the others. Methods are interleaved within a sample so that
load on a shared machine spreads over all of them. Randomised methods (LSH) are
rebuilt for every sample with hyperplanes drawn from (seed, sample index), so the
spread over samples covers both the query sampling and the hash functions. The
result is one row per (method, sample) and a summary with mean and std per method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tirg.data import RetrievalDataset
from tirg.features import FeatureCache, dataset_for_cache
from tirg.fileio import atomic_directory, marked_kind
from tirg.index.checks import as_exclude, as_features
from tirg.index.exact import exact_search
from tirg.index.lsh import LSHConfig, LSHIndex
from tirg.metrics import DEFAULT_KS, recall_at_ks

logger = logging.getLogger(__name__)

# The course project's setting under its own protocol (12 bits, one table, no probing, exact
# search only for an empty bucket), then bits x tables x probe radius under the project's
# protocol, the first of them the original's setting. Longer keys over many tables keep the
# candidate sets small while every true neighbour still gets many chances to collide; they
# are the settings on the measured front.
ORIGINAL_LSH = LSHConfig(n_bits=12, n_tables=1, probe_radius=0, protocol="original")
DEFAULT_LSH_GRID: tuple[LSHConfig, ...] = (
    ORIGINAL_LSH,
    LSHConfig(n_bits=12, n_tables=1, probe_radius=0),
    LSHConfig(n_bits=12, n_tables=1, probe_radius=2),
    LSHConfig(n_bits=8, n_tables=8, probe_radius=1),
    LSHConfig(n_bits=12, n_tables=16, probe_radius=1),
    LSHConfig(n_bits=12, n_tables=48, probe_radius=0),
    LSHConfig(n_bits=16, n_tables=32, probe_radius=1),
    LSHConfig(n_bits=16, n_tables=96, probe_radius=0),
    LSHConfig(n_bits=18, n_tables=128, probe_radius=0),
)


def lsh_grid(protocols: str = "both", original_bits: int = 12) -> tuple[LSHConfig, ...]:
    """The LSH rows to compare: "original" (the course project's protocol alone, at original_bits),
    "project" (the project's settings) or "both"."""
    original = replace(ORIGINAL_LSH, n_bits=original_bits)
    project = tuple(c for c in DEFAULT_LSH_GRID if c.protocol == "project")
    grids = {"original": (original,), "project": project, "both": (original, *project)}
    if protocols not in grids:
        raise ValueError(f"protocols={protocols!r} must be one of {sorted(grids)}")
    return grids[protocols]


def ks_up_to(k: int) -> tuple[int, ...]:
    """TIRG's recall cut-offs (1, 5, 10, 50, 100) below k, then k itself."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    return (*(c for c in DEFAULT_KS if c < k), k)


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how often.

    n_repeats x n_queries: random query samples (without replacement, seeded by `seed`);
        bootstrap: draw with replacement instead (`compare_feature_cache` sets it, with n_queries
        the split's size, when the split has fewer than n_queries queries).
    ks: recall cut-offs; the deepest is k for every method, capped at the gallery size
        (minus each query's excluded source) by `run_comparison`.
    lsh: LSH settings; each sample draws their hyperplanes from (seed, sample index), so
        LSHConfig.seed is not used here. protocol="original" rows form the "lsh-original" family.
    faiss: include the FAISS peers (needs faiss-cpu); faiss_lsh_bits and ivf_probes set them.
    ivf_lists: IVF cells; None means about 4 sqrt(N).
    overlap_target: top-k overlap with exact search that the "best LSH" row must reach.
    """

    n_repeats: int = 5
    n_queries: int = 5000
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    lsh: tuple[LSHConfig, ...] = DEFAULT_LSH_GRID
    faiss: bool = True
    faiss_lsh_bits: tuple[int, ...] = (512, 2048)
    ivf_lists: int | None = None
    ivf_probes: tuple[int, ...] = (4, 16, 64)
    overlap_target: float = 0.95
    bootstrap: bool = False

    def __post_init__(self) -> None:
        if self.n_repeats < 1 or self.n_queries < 1:
            raise ValueError(f"n_repeats={self.n_repeats} and n_queries={self.n_queries} must be >= 1")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks={self.ks} must be a non-empty tuple of positive cut-offs")


@dataclass(frozen=True)
class SearchOutput:
    """What a method returns for one sample: ranked ids and how many gallery items each query was compared with."""

    ids: np.ndarray  # int64 [Q, k], -1 for an empty slot
    n_compared: np.ndarray | None  # int64 [Q]; None: the searcher's count(queries) says, outside the timing


Searcher = Callable[[np.ndarray, int, "np.ndarray | None"], SearchOutput]


@dataclass(frozen=True)
class Method:
    """A named search method: `build(gallery, seed)` returns `search(queries, k, exclude) -> SearchOutput`.

    per_repeat: rebuilt for every sample with that sample's seed (randomised methods); others
    are built once (the seed is then the comparison's own) and reused.
    """

    name: str
    family: str  # exact | lsh | lsh-original | faiss-flat | faiss-lsh | faiss-ivf | learned-hash | lsh-equal-bits
    build: Callable[[np.ndarray, int], Searcher]
    per_repeat: bool = False


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
class Comparison:
    runs: pd.DataFrame  # one row per (method, sample)
    summary: pd.DataFrame  # one row per method: *_mean and *_std columns, build_s, bucket statistics
    ks: tuple[int, ...]  # the recall cut-offs measured (the config's, capped at the gallery)
    sampling: str  # how the query samples were drawn, for a table's caption (`sampling_caption`)


def repeat_seed(seed: int, repeat: int) -> int:
    """The hyperplane seed of sample `repeat`: independent streams for every (seed, repeat) pair."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def capped_ks(ks: Sequence[int], n_gallery: int, excluding: bool) -> tuple[int, ...]:
    """The cut-offs with the deepest capped at what the gallery holds once a query's source is excluded."""
    deepest = n_gallery - (1 if excluding else 0)
    if deepest < 1:
        raise ValueError(f"the gallery has {n_gallery} item(s): nothing is left to retrieve after excluding the source")
    return tuple(sorted({min(k, deepest) for k in ks}))


def methods_for(config: CompareConfig, n_gallery: int) -> list[Method]:
    """Exact search, every LSH setting in the config and (if asked) the FAISS peers."""
    methods = [Method("exact", "exact", _build_exact)]
    methods += [
        Method(c.label, "lsh-original" if c.protocol == "original" else "lsh", _lsh_builder(c), per_repeat=True) for c in config.lsh
    ]
    if config.faiss:
        from tirg.index import faiss_peers

        faiss_peers.import_faiss()  # fail before any timing if faiss is missing
        methods.append(Method("faiss-flat", "faiss-flat", _faiss_builder(faiss_peers.faiss_flat_ip)))
        for bits in config.faiss_lsh_bits:
            builder = _faiss_builder(lambda g, b=bits: faiss_peers.faiss_lsh(g, b))
            methods.append(Method(f"faiss-lsh bits={bits}", "faiss-lsh", builder))
        n_lists = config.ivf_lists or faiss_peers.default_ivf_lists(n_gallery)
        probes = tuple(p for p in config.ivf_probes if p <= n_lists)
        methods += _ivf_methods(n_lists, probes, config.seed)
    return methods


def run_comparison(
    queries: np.ndarray,
    gallery: np.ndarray,
    exclude: np.ndarray | None,
    target_labels: np.ndarray | None,
    gallery_labels: np.ndarray | None,
    config: CompareConfig,
    methods: Sequence[Method] | None = None,
    score: DatasetScore | None = None,
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
    if score is None and (len(target_labels) != len(queries) or len(gallery_labels) != len(gallery)):
        raise ValueError(
            f"target_labels ({len(target_labels)}) and gallery_labels ({len(gallery_labels)}) must match "
            f"the queries ({len(queries)}) and gallery ({len(gallery)})"
        )
    methods = list(methods) if methods is not None else methods_for(config, len(gallery))
    if methods[0].family != "exact":
        raise ValueError(f"the first method must be exact search (the overlap reference), got {methods[0].name!r}")
    ks = capped_ks(config.ks, len(gallery), exclude is not None)
    if ks != tuple(sorted(set(config.ks))):
        logger.info("the gallery has %d items: recall cut-offs %s instead of %s", len(gallery), ks, config.ks)
    k = max(ks)
    # A whole gallery holds every distinct item, so searching deeper than it never changes a score.
    depth = k if score is None else max(k, min(score.depth(ks), len(gallery) - (exclude is not None)))
    if score is None:
        target_labels, gallery_labels = np.asarray(target_labels), np.asarray(gallery_labels)

    searchers, build_seconds = _build_all([m for m in methods if not m.per_repeat], gallery, config.seed)
    rows = []
    samples = draw_samples(len(queries), config.n_queries, config.n_repeats, config.seed, config.bootstrap)
    for repeat, sample in enumerate(samples):
        sample_exclude = None if exclude is None else exclude[sample]
        reference = None  # exact search's top-k on this sample
        fresh, fresh_seconds = _build_all([m for m in methods if m.per_repeat], gallery, repeat_seed(config.seed, repeat))
        built = iter(zip(searchers, build_seconds)), iter(zip(fresh, fresh_seconds))
        for method in methods:
            search, build_s = next(built[method.per_repeat])
            start = time.perf_counter()
            out = search(queries[sample], depth, sample_exclude)
            query_s = time.perf_counter() - start
            n_compared = out.n_compared if out.n_compared is not None else search.count(queries[sample])
            reference = out.ids[:, :k] if reference is None else reference
            if score is None:
                recalls = recall_at_ks(out.ids, target_labels[sample], gallery_labels, ks)
            else:
                recalls = score(sample, out.ids, ks)
            rows.append(
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
    runs = pd.DataFrame(rows)
    sampling = sampling_caption(config.n_repeats, config.n_queries, len(queries), config.bootstrap)
    return Comparison(runs=runs, summary=summarize(runs), ks=ks, sampling=sampling)


def _build_all(methods: Sequence[Method], gallery: np.ndarray, seed: int) -> tuple[list[Searcher], list[float]]:
    searchers, build_seconds = [], []
    for method in methods:
        start = time.perf_counter()
        searchers.append(method.build(gallery, seed))
        build_seconds.append(time.perf_counter() - start)
        logger.info("built %s in %.2f s", method.name, build_seconds[-1])
    return searchers, build_seconds


def draw_samples(n_available: int, n_queries: int, n_repeats: int, seed: int, bootstrap: bool = False) -> list[np.ndarray]:
    """n_repeats sorted samples of n_queries query rows each: distinct rows, or with `bootstrap` drawn
    with replacement (as the original drew), where a row may repeat."""
    if n_queries > n_available and not bootstrap:
        raise ValueError(f"n_queries={n_queries} is more than the {n_available} queries available (bootstrap=True draws with replacement)")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_available, size=n_queries, replace=bootstrap)) for _ in range(n_repeats)]


def sampling_caption(n_repeats: int, n_queries: int, n_available: int, bootstrap: bool) -> str:
    """What a table's mean ± std is over, e.g. "mean ± std over 5 bootstrap samples of 808 queries (...)"."""
    if n_repeats == 1:
        how = "one sample"
    else:
        how = f"mean ± std over {n_repeats} {'bootstrap ' if bootstrap else ''}samples"
    drawn = "drawn with replacement" if bootstrap else "distinct queries drawn"
    return f"{how} of {n_queries:,} queries ({drawn} from the split's {n_available:,})"


def bootstrap_config(config: CompareConfig, n_available: int) -> CompareConfig:
    """The config for a split of `n_available` queries: with fewer queries than a sample holds, every sample
    would be the whole split (no spread), so each sample is a bootstrap of the split instead. A sample
    size equal to the split's is taken as asking for the whole split."""
    if n_available >= config.n_queries:
        return config
    return replace(config, n_queries=n_available, bootstrap=True)


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


def pareto_front(summary: pd.DataFrame, quality: str, time_column: str = "query_s_mean") -> pd.Series:
    """True for methods no other method beats on both quality (higher) and time (lower)."""
    q, t = summary[quality].to_numpy(), summary[time_column].to_numpy()
    at_least_as_good = (q[None, :] >= q[:, None]) & (t[None, :] <= t[:, None])
    strictly_better = (q[None, :] > q[:, None]) | (t[None, :] < t[:, None])
    dominated = (at_least_as_good & strictly_better).any(axis=1)  # [i]: some j beats i
    return pd.Series(~dominated, index=summary.index)


def best_lsh(summary: pd.DataFrame, overlap_column: str, overlap_target: float) -> pd.Series:
    """The fastest LSH setting reaching the overlap target, else the most accurate one.

    Settings that compare each query with half the gallery or more on average (mostly
    falling back to exact search: exact search with overhead) are passed over when any
    other setting exists.
    """
    lsh = summary[summary["family"] == "lsh"]
    if lsh.empty:
        raise ValueError("the comparison has no LSH setting")
    n_gallery = summary.loc[summary["family"] == "exact", "candidates_mean"].max()
    pruning = lsh[lsh["candidates_mean"] < n_gallery / 2]
    pool = pruning if not pruning.empty else lsh
    good = pool[pool[overlap_column] >= overlap_target]
    if not good.empty:
        return good.loc[good["query_s_mean"].idxmin()]
    return pool.loc[pool[overlap_column].idxmax()]


def fastest_lsh_within_recall(summary: pd.DataFrame, k: int = 100, max_gap: float = 0.01) -> pd.Series | None:
    """The fastest LSH setting whose task recall@k is within `max_gap` of exact search's, or None.

    This is the recall-first reading of "best": any setting that prunes at all counts, while
    `best_lsh` is the speed-first one that passes over near-exhaustive settings. A setting
    whose every query fell back to exact search (candidates = gallery) is not hashing and
    never counts.
    """
    exact = summary[summary["family"] == "exact"].iloc[0]
    lsh = summary[(summary["family"] == "lsh") & (summary["candidates_mean"] < exact["candidates_mean"])]
    close = lsh[lsh[f"recall@{k}_mean"] >= exact[f"recall@{k}_mean"] - max_gap]
    return None if close.empty else close.loc[close["query_s_mean"].idxmin()]


def acceptance(summary: pd.DataFrame, overlap_target: float, k: int = 100) -> dict[str, float | str | bool]:
    """The issue's ratios: exact / FAISS flat time, best LSH speedup over exact, and its overlap."""
    exact = summary[summary["family"] == "exact"].iloc[0]
    overlap_column = f"overlap@{k}_mean"
    lsh = best_lsh(summary, overlap_column, overlap_target)
    result: dict[str, float | str | bool] = {
        "best_lsh": lsh["method"],
        "lsh_speedup_over_exact": exact["query_s_mean"] / lsh["query_s_mean"],
        "lsh_overlap": lsh[overlap_column],
        "lsh_recall_gap": exact[f"recall@{k}_mean"] - lsh[f"recall@{k}_mean"],
    }
    result["lsh_target_met"] = bool(result["lsh_speedup_over_exact"] > 1 and result["lsh_overlap"] >= overlap_target)
    flat = summary[summary["family"] == "faiss-flat"]
    if not flat.empty:
        result["exact_over_faiss_flat_time"] = exact["query_s_mean"] / flat.iloc[0]["query_s_mean"]
    return result


def two_row_table(summary: pd.DataFrame, overlap_target: float, k: int = 100, caption: str | None = None) -> str:
    """The original's table (Recall@k and query time, mean +- std) for hashing and exact search.

    Hashing rows: the original protocol's setting (when compared) and the best project LSH
    setting (when compared). With one sample there is no spread, and only the mean is shown.
    caption (e.g. Comparison.sampling) goes under the table.
    """
    hashing = [
        (f"Hashing, original protocol ({row['method'].removesuffix(' (original protocol)')})", row)
        for _, row in summary[summary["family"] == "lsh-original"].iterrows()
    ]
    if (summary["family"] == "lsh").any():
        lsh = best_lsh(summary, f"overlap@{k}_mean", overlap_target)
        hashing.append((f"Hashing, best project setting ({lsh['method']})", lsh))
    exact = summary[summary["family"] == "exact"].iloc[0]
    lines = [f"| | Recall (R@{k}) | Time (s) |", "|---|---|---|"]
    for title, row in (*hashing, ("No hashing (exact)", exact)):
        recall = _mean_std(100 * row[f"recall@{k}_mean"], 100 * row[f"recall@{k}_std"], 2)
        seconds = _mean_std(row["query_s_mean"], row["query_s_std"], 3)
        lines.append(f"| {title} | {recall} | {seconds} |")
    if caption:
        lines += ["", f"{caption[0].upper()}{caption[1:]}."]
    return "\n".join(lines) + "\n"


def _mean_std(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


# What `write_outputs` writes: its folder is replaced only when it holds nothing else (and with overwrite).
COMPARISON_FILES = (
    "summary.csv",
    "runs.csv",
    "table.md",
    "recall_vs_time.png",
    "recall_at_k.png",
    "learned_vs_random.md",
    "learned_vs_random.png",
)
COMPARISON_RESULTS = marked_kind("search comparison folder", "tirg-search-comparison", COMPARISON_FILES)


def write_outputs(
    comparison: Comparison, out_dir: Path, overlap_target: float, ks: Sequence[int] | None = None, overwrite: bool = False
) -> list[Path]:
    """Write summary.csv, runs.csv, table.md and the two plots as folder out_dir; return the paths written.

    The folder is written whole (staged, then swapped in): an existing one is replaced only when it
    is an earlier comparison's and `overwrite` is set. ks defaults to the cut-offs the comparison
    measured (comparison.ks).
    """
    from tirg.plots_compare import plot_recall_curves, plot_recall_vs_time

    ks = comparison.ks if ks is None else tuple(ks)
    names = ["summary.csv", "runs.csv", "table.md", "recall_vs_time.png", "recall_at_k.png"]
    with atomic_directory(out_dir, COMPARISON_RESULTS, overwrite) as staging:
        comparison.summary.to_csv(staging / names[0], index=False)
        comparison.runs.to_csv(staging / names[1], index=False)
        (staging / names[2]).write_text(two_row_table(comparison.summary, overlap_target, max(ks), comparison.sampling))
        plot_recall_vs_time(comparison.summary, staging / names[3], k=max(ks))
        plot_recall_curves(comparison.summary, staging / names[4], ks, overlap_target)
        if (comparison.summary["family"] == "learned-hash").any():
            from tirg.plots_compare import plot_learned_vs_random

            names += ["learned_vs_random.md", "learned_vs_random.png"]
            (staging / names[5]).write_text(learned_vs_random_table(comparison.summary, max(ks)))
            plot_learned_vs_random(comparison.summary, staging / names[6], max(ks))
    return [Path(out_dir) / name for name in names]


def _build_exact(gallery: np.ndarray, seed: int = 0) -> Searcher:
    def search(queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        _, ids = exact_search(queries, gallery, k, exclude=exclude)
        return SearchOutput(ids, np.full(len(queries), len(gallery), dtype=np.int64))

    return search


class _LSHSearch:
    """LSHIndex as a comparison method; fallback queries count as comparing with the whole gallery."""

    def __init__(self, index: LSHIndex) -> None:
        self.index = index
        buckets = index.bucket_stats()
        self.stats = {
            "nonempty_buckets_mean": float(np.mean(buckets.nonempty_buckets)),  # over the tables
            "bucket_size_median": buckets.size_median,
            "bucket_size_max": float(buckets.size_max),
        }

    def __call__(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        result = self.index.search(queries, k, exclude=exclude)
        n_compared = np.where(result.fallback, len(self.index.gallery), result.n_candidates)
        return SearchOutput(result.ids, n_compared)


def _lsh_builder(config: LSHConfig) -> Callable[[np.ndarray, int], _LSHSearch]:
    return lambda gallery, seed: _LSHSearch(LSHIndex.build(gallery, replace(config, seed=seed)))


class _FaissSearch:
    """A FAISS peer as a comparison method; count() (IVF's probed-list sizes) runs outside the timing."""

    def __init__(self, searcher: object) -> None:
        self.searcher = searcher

    def __call__(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        _, ids = self.searcher.search(queries, k, exclude=exclude)
        return SearchOutput(ids, None)

    def count(self, queries: np.ndarray) -> np.ndarray:
        return self.searcher.n_compared(queries)


def _faiss_builder(make: Callable) -> Callable[[np.ndarray, int], _FaissSearch]:
    return lambda gallery, seed: _FaissSearch(make(gallery))


def _ivf_methods(n_lists: int, probes: tuple[int, ...], seed: int) -> list[Method]:
    """One IVF method per probe count; the index is trained once, by whichever is built first."""
    from tirg.index import faiss_peers

    trained: dict[int, faiss_peers.FaissSearcher] = {}

    def builder(position: int) -> Callable:
        def make(gallery: np.ndarray) -> faiss_peers.FaissSearcher:
            if not trained:
                trained.update(enumerate(faiss_peers.faiss_ivf_flat(gallery, n_lists, probes, seed=seed)))
            return trained[position]

        return _faiss_builder(make)

    return [Method(f"faiss-ivf lists={n_lists} probe={p}", "faiss-ivf", builder(i)) for i, p in enumerate(probes)]


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


def learned_vs_random_methods(planes: Sequence[np.ndarray], radii: Sequence[int], seed: int = 0) -> list[Method]:
    """Learned and random hyperplanes at equal bits, one table each, through the same LSH index.

    planes: float32 [bits, d] per learned code length (HashHead.planes). For each and each
    probe radius, a "learned" method and the random-hyperplane LSH of the same bits and radius.
    """
    methods = []
    for learned in planes:
        bits = learned.shape[0]
        for radius in radii:
            config = LSHConfig(n_bits=bits, n_tables=1, probe_radius=radius, seed=seed)
            build = lambda g, _, p=learned, c=config: _LSHSearch(LSHIndex.from_planes(g, p[None], c))  # noqa: E731
            methods.append(Method(f"learned b={bits} r={radius}", "learned-hash", build))
            methods.append(Method(f"{config.label} (random)", "lsh-equal-bits", _lsh_builder(config), per_repeat=True))
    return methods


def learned_vs_random_table(summary: pd.DataFrame, k: int = 100) -> str:
    """Markdown: recall@k and candidates per query of learned and random codes at equal bits and radius."""
    exact = summary[summary["family"] == "exact"].iloc[0]
    learned = summary[summary["family"] == "learned-hash"]
    lines = [
        f"| bits | probe radius | learned R@{k} | random R@{k} | learned candidates | random candidates |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in learned.iterrows():
        bits, radius = row["method"].removeprefix("learned b=").split(" r=")
        random_row = summary[summary["method"] == f"lsh b={bits} L=1 r={radius} (random)"].iloc[0]
        lines.append(
            f"| {bits} | {radius} | {100 * row[f'recall@{k}_mean']:.2f} | {100 * random_row[f'recall@{k}_mean']:.2f} "
            f"| {row['candidates_mean']:.0f} | {random_row['candidates_mean']:.0f} |"
        )
    lines.append(
        f"\nExact search: R@{k} {100 * exact[f'recall@{k}_mean']:.2f} with {exact['candidates_mean']:.0f} candidates "
        "(the whole gallery). A query with fewer than k candidates falls back to exact search and counts the whole gallery."
    )
    return "\n".join(lines) + "\n"
