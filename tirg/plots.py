"""Figures: recall per model and a retrieval example, written atomically.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no global
backend is chosen on import and notebooks keep their own display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from tirg.fileio import atomic_write

HIT_COLOR = "#1a9850"
MISS_COLOR = "#d73027"


def save_figure(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    file_format = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: figure.savefig(f, format=file_format, dpi=dpi, bbox_inches="tight"))


def plot_recall_per_model(table: pd.DataFrame, path: str | Path, ks: Sequence[int] = (1, 10)) -> Path:
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
    return save_figure(figure, path)


def plot_retrieval(
    query_image: Image.Image,
    query_text: str,
    results: Sequence[Image.Image],
    hits: Sequence[bool],
    path: str | Path,
    target_image: Image.Image | None = None,
    result_titles: Sequence[str] | None = None,
) -> Path:
    """Query image with its text, the ground truth (optional), then the top-k with hits framed in green."""
    columns = 1 + (target_image is not None) + len(results)
    figure = Figure(figsize=(1.6 * columns, 2.3))
    axes = figure.subplots(1, columns)
    panels = [(query_image, "query", "black")]
    if target_image is not None:
        panels.append((target_image, "ground truth", "black"))
    for rank, (image, hit) in enumerate(zip(results, hits)):
        title = result_titles[rank] if result_titles else f"#{rank + 1}" + (" hit" if hit else "")
        panels.append((image, title, HIT_COLOR if hit else MISS_COLOR))
    for axes_i, (image, title, color) in zip(axes, panels):
        axes_i.imshow(image, interpolation="nearest")
        axes_i.set_title(title, fontsize=8, color=color)
        axes_i.set_xticks([])
        axes_i.set_yticks([])
        for spine in axes_i.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(3 if color != "black" else 1)
    figure.suptitle(f'"{query_text}"', fontsize=10)
    return save_figure(figure, path)
