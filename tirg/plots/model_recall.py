"""Recall per model: the demo's grouped bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from tirg.plots.save import save_figure


def recall_per_model_figure(table: pd.DataFrame, ks: Sequence[int] = (1, 10)) -> Figure:
    """Grouped bars of R@k (one group per model), values printed on the bars."""
    figure = Figure(figsize=(1.6 + 1.4 * len(table), 3.4))
    axes = figure.subplots()
    width = 0.8 / len(ks)
    for offset, k in enumerate(ks):
        positions = [i + (offset - (len(ks) - 1) / 2) * width for i in range(len(table))]
        bars = axes.bar(positions, table[f"R@{k}"], width, label=f"R@{k}")
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(range(len(table)), table["model"])
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("recall")
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title("Test recall on the generated CSS data")
    return figure


def plot_recall_per_model(table: pd.DataFrame, path: str | Path, ks: Sequence[int] = (1, 10)) -> Path:
    """`recall_per_model_figure` saved to `path`."""
    return save_figure(recall_per_model_figure(table, ks), path)
