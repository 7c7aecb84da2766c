"""Figures of the search comparison: recall@k versus query time (Pareto front marked) and recall@k curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

# A bare Figure draws with the Agg canvas when saved, without touching pyplot's global backend.
from matplotlib.figure import Figure

from tirg.compare import best_lsh, pareto_front

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


def plot_recall_vs_time(summary: pd.DataFrame, path: Path, k: int = 100) -> Path:
    """Scatter of recall@k (mean +- std) against query time, one colour per family, Pareto front as a line."""
    quality = f"recall@{k}_mean"
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for family, rows in summary.groupby("family", sort=False):
        color, marker = _FAMILY_STYLE.get(family, ("tab:purple", "x"))
        ax.errorbar(
            rows["query_s_mean"], rows[quality], xerr=rows["query_s_std"], yerr=rows[f"recall@{k}_std"],
            fmt=marker, color=color, label=family, capsize=2,
        )
    front = summary[pareto_front(summary, quality)].sort_values("query_s_mean")
    ax.step(front["query_s_mean"], front[quality], where="post", color="red", alpha=0.6, label="Pareto front")
    for _, row in front.iterrows():
        ax.annotate(row["method"], (row["query_s_mean"], row[quality]), fontsize=7, xytext=(4, -8),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("query time per sample (s, log scale)")
    ax.set_ylabel(f"task recall@{k}")
    ax.set_title(f"Recall@{k} versus query time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_recall_curves(summary: pd.DataFrame, path: Path, ks: Sequence[int], overlap_target: float) -> Path:
    """Recall@k against k for exact search, the best LSH setting, the original protocol's LSH and each FAISS peer."""
    k = max(ks)
    best = best_lsh(summary, f"overlap@{k}_mean", overlap_target)["method"] if (summary["family"] == "lsh").any() else None
    shown = summary[(summary["family"] != "lsh") | (summary["method"] == best)]
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for _, row in shown.iterrows():
        color, marker = _FAMILY_STYLE.get(row["family"], ("tab:purple", "x"))
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
    fig.savefig(path, dpi=120)
    return path


def plot_learned_vs_random(summary: pd.DataFrame, path: Path, k: int = 100) -> Path:
    """Recall@k against candidates per query: learned and random hyperplanes at equal bits, one line per code length."""
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for family, label in (("learned-hash", "learned"), ("lsh-equal-bits", "random")):
        rows = summary[summary["family"] == family]
        bits = rows["method"].str.extract(r"b=(\d+)")[0]
        for b, group in rows.groupby(bits, sort=False):
            color, marker = _FAMILY_STYLE[family]
            group = group.sort_values("candidates_mean")
            ax.plot(group["candidates_mean"], group[f"recall@{k}_mean"], "-" if family == "learned-hash" else "--",
                    marker=marker, color=color, alpha=0.5 + 0.5 * (int(b) == int(bits.max())), label=f"{label} {b} bits")
    exact = summary[summary["family"] == "exact"].iloc[0]
    ax.scatter([exact["candidates_mean"]], [exact[f"recall@{k}_mean"]], marker="*", s=120, color="black", label="exact", zorder=3)
    ax.set_xlabel("candidates per query (one point per probe radius; a fallback to exact search counts the whole gallery)")
    ax.set_ylabel(f"task recall@{k}")
    ax.set_title("Learned versus random hyperplanes at equal bits")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
