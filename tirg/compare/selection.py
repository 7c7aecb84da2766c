"""Which method a report shows: the Pareto front, the best LSH setting, the issue's acceptance ratios."""

from __future__ import annotations

import pandas as pd


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
