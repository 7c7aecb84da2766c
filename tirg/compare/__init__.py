"""Search comparison: exact search, LSH settings, learned hyperplanes and FAISS peers on one feature set.

config (what to compare), sampling (query samples, bootstrap), methods (method adapters), runner
(`run_comparison`, `compare_feature_cache`), selection (Pareto front, best LSH setting), report
(markdown tables, the one mean ± std format), buckets (LSH bucket sizes), index_report (an opened
FAISS index beside exact search). Figures of a comparison live in tirg.plots.comparison.
"""

from tirg.compare.buckets import lsh_bucket_sizes
from tirg.compare.config import DEFAULT_LSH_GRID, ORIGINAL_LSH, CompareConfig, ks_up_to, lsh_grid
from tirg.compare.methods import Method, SearchOutput, build_exact, learned_vs_random_methods, methods_for
from tirg.compare.report import learned_vs_random_table, mean_std, recall_table, two_row_table
from tirg.compare.runner import Comparison, DatasetScore, capped_ks, compare_feature_cache, run_comparison, summarize, top_k_overlap
from tirg.compare.sampling import bootstrap_config, draw_samples, repeat_seed, sampling_caption
from tirg.compare.selection import acceptance, best_lsh, fastest_lsh_within_recall, pareto_front

__all__ = [
    "DEFAULT_LSH_GRID",
    "ORIGINAL_LSH",
    "CompareConfig",
    "Comparison",
    "DatasetScore",
    "Method",
    "SearchOutput",
    "acceptance",
    "best_lsh",
    "bootstrap_config",
    "build_exact",
    "capped_ks",
    "compare_feature_cache",
    "draw_samples",
    "fastest_lsh_within_recall",
    "ks_up_to",
    "learned_vs_random_methods",
    "learned_vs_random_table",
    "lsh_bucket_sizes",
    "lsh_grid",
    "mean_std",
    "methods_for",
    "pareto_front",
    "recall_table",
    "repeat_seed",
    "run_comparison",
    "sampling_caption",
    "summarize",
    "top_k_overlap",
    "two_row_table",
]
