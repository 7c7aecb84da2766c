"""The comparison as tables: the course project's two-row table, learned versus random codes, recall per method.

Every mean ± std in them goes through `mean_std`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tirg.compare.selection import best_lsh


def mean_std(mean: float, std: float, digits: int, nan_std_as_zero: bool = False) -> str:
    """ "mean ± std" at `digits` decimals. pandas gives NaN for the std of a single sample: then the mean
    alone, or "± 0" with `nan_std_as_zero` (for a column whose cells should all read alike)."""
    if np.isnan(std):
        if not nan_std_as_zero:
            return f"{mean:.{digits}f}"
        std = 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_rows(summary: pd.DataFrame, overlap_target: float, k: int) -> list[pd.Series]:
    """The course project's rows: the original protocol's LSH (when compared), the best project LSH setting
    (when compared), then exact search."""
    rows = [row for _, row in summary[summary["family"] == "lsh-original"].iterrows()]
    if (summary["family"] == "lsh").any():
        rows.append(best_lsh(summary, f"overlap@{k}_mean", overlap_target))
    rows.append(summary[summary["family"] == "exact"].iloc[0])
    return rows


def two_row_table(summary: pd.DataFrame, overlap_target: float, k: int = 100, caption: str | None = None) -> str:
    """The original's table (Recall@k and query time, mean +- std) for hashing and exact search.

    Hashing rows: the original protocol's setting (when compared) and the best project LSH
    setting (when compared). With one sample there is no spread, and only the mean is shown.
    caption (e.g. Comparison.sampling) goes under the table.
    """
    lines = [f"| | Recall (R@{k}) | Time (s) |", "|---|---|---|"]
    for row in table_rows(summary, overlap_target, k):
        if row["family"] == "lsh-original":
            title = f"Hashing, original protocol ({row['method'].removesuffix(' (original protocol)')})"
        elif row["family"] == "lsh":
            title = f"Hashing, best project setting ({row['method']})"
        else:
            title = "No hashing (exact)"
        recall = mean_std(100 * row[f"recall@{k}_mean"], 100 * row[f"recall@{k}_std"], 2)
        seconds = mean_std(row["query_s_mean"], row["query_s_std"], 3)
        lines.append(f"| {title} | {recall} | {seconds} |")
    if caption:
        lines += ["", f"{caption[0].upper()}{caption[1:]}."]
    return "\n".join(lines) + "\n"


def recall_table(summary: pd.DataFrame, ks: Sequence[int]) -> pd.DataFrame:
    """One row per method: recall@k in percent and query time, each as 'mean ± std' over the samples."""
    rows = {}
    for _, row in summary.iterrows():
        cells = {f"R@{k}": mean_std(100 * row[f"recall@{k}_mean"], 100 * row[f"recall@{k}_std"], 2, True) for k in ks}
        cells["Time (s)"] = mean_std(row["query_s_mean"], row["query_s_std"], 3, True)
        cells["candidates / query"] = f"{row['candidates_mean']:.0f}"
        rows[row["method"]] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


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
