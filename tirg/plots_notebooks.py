"""Figures and tables the notebooks show: training curves, the search comparison, retrieval grids.

Every function returns a `matplotlib.figure.Figure` (or a DataFrame) without touching pyplot,
so a notebook can display it and `tirg.plots.save_figure` can write it.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from tirg.compare import best_lsh
from tirg.index import LSHConfig, LSHIndex
from tirg.plots import HIT_COLOR, MISS_COLOR
from tirg.plots_compare import method_styles

SAME_COLOR = "tab:blue"  # the gallery's copy of an uploaded query image


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def training_curves_figure(points: pd.DataFrame, train_loss: pd.DataFrame, best_iteration: int | None = None) -> Figure:
    """Training and validation loss against iteration (best point marked), and test recall beside it
    where the points hold any (a run that evaluated only the validation loss draws the loss alone)."""
    recall_columns = [c for c in points.columns if c.startswith("R@")]
    figure = Figure(figsize=(10, 3.6) if recall_columns else (6, 3.6))
    loss_axes, *rest = figure.subplots(1, 2 if recall_columns else 1, squeeze=False)[0]
    validation = points.dropna(subset=["val_loss"]) if "val_loss" in points.columns else points.iloc[0:0]
    if not train_loss.empty:
        loss_axes.plot(train_loss["iteration"], train_loss["value"], color="tab:blue", alpha=0.7, label="training loss")
    if not validation.empty:
        loss_axes.plot(validation["iteration"], validation["val_loss"], "o-", color="tab:orange", label="validation loss (eval mode)")
    if best_iteration is not None and not validation.empty:
        best = validation[validation["iteration"] == best_iteration]
        loss_axes.plot(best["iteration"], best["val_loss"], "*", markersize=14, color="tab:red", label=f"best (iteration {best_iteration})")
    loss_axes.set_xlabel("iteration")
    loss_axes.set_ylabel("loss")
    loss_axes.set_title("Loss")
    loss_axes.grid(True, alpha=0.3)
    loss_axes.legend(fontsize=8)
    if recall_columns:
        recall_axes = rest[0]
        for column in recall_columns:
            tested = points.dropna(subset=[column])
            recall_axes.plot(tested["iteration"], tested[column], "o-", label=column)
        recall_axes.set_ylim(0, 1.02)
        recall_axes.set_xlabel("iteration")
        recall_axes.set_ylabel("test recall")
        recall_axes.set_title("Test recall at the evaluation points")
        recall_axes.grid(True, alpha=0.3)
        recall_axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def recall_table(summary: pd.DataFrame, ks: Sequence[int]) -> pd.DataFrame:
    """One row per method: recall@k in percent and query time, each as 'mean ± std' over the samples."""
    rows = {}
    for _, row in summary.iterrows():
        cells = {f"R@{k}": f"{100 * row[f'recall@{k}_mean']:.2f} ± {100 * _std(row[f'recall@{k}_std']):.2f}" for k in ks}
        cells["Time (s)"] = f"{row['query_s_mean']:.3f} ± {_std(row['query_s_std']):.3f}"
        cells["candidates / query"] = f"{row['candidates_mean']:.0f}"
        rows[row["method"]] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def _std(value: float) -> float:
    """pandas gives NaN for the std of a single sample; show it as 0."""
    return 0.0 if math.isnan(value) else float(value)


def compare_result_figure(summary: pd.DataFrame, ks: Sequence[int], overlap_target: float, caption: str | None = None) -> Figure:
    """The course project's table (hashing vs exact: Recall@k and time) beside their recall@k curves.

    Hashing rows: the original protocol's setting (when compared) and the best project LSH setting.
    caption: how the samples were drawn (Comparison.sampling), shown above the table.
    """
    k = max(ks)
    rows = [row for _, row in summary[summary["family"] == "lsh-original"].iterrows()]
    if (summary["family"] == "lsh").any():
        rows.append(best_lsh(summary, f"overlap@{k}_mean", overlap_target))
    rows.append(summary[summary["family"] == "exact"].iloc[0])
    styles = method_styles(summary["method"].tolist())
    figure = Figure(figsize=(12, 3.8))
    table_axes, curve_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    cells = [
        [
            f"{100 * row[f'recall@{k}_mean']:.2f} ± {100 * _std(row[f'recall@{k}_std']):.2f}",
            f"{row['query_s_mean']:.3f} ± {_std(row['query_s_std']):.3f}",
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


def lsh_bucket_sizes(gallery: np.ndarray, settings: Sequence[LSHConfig]) -> dict[str, np.ndarray]:
    """Items per non-empty bucket over all tables of an index built with each setting, by its label."""
    sizes = {}
    for setting in settings:
        index = LSHIndex.build(gallery, setting)
        sizes[setting.label] = np.concatenate([table.bucket_sizes() for table in index.tables])
    return sizes


def bucket_size_figure(sizes: Mapping[str, np.ndarray]) -> Figure:
    """Histogram of bucket sizes (items per non-empty bucket, over all tables), one panel per LSH setting."""
    figure = Figure(figsize=(4.2 * len(sizes), 3.2))
    axes_list = np.atleast_1d(figure.subplots(1, len(sizes)))
    for axes, (label, values) in zip(axes_list, sizes.items()):
        values = np.asarray(values)
        bins = np.unique(np.geomspace(1, max(2, values.max() + 1), 30).astype(int))
        axes.hist(values, bins=bins, color="tab:blue", alpha=0.8)
        axes.set_xscale("log")
        axes.set_xlabel("gallery items in the bucket")
        axes.set_ylabel("buckets")
        axes.set_title(f"{label}\n{len(values)} non-empty buckets, median {np.median(values):.0f}", fontsize=9)
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def retrieval_grid_figure(
    query_image: Image.Image,
    query_text: str,
    results: Sequence[Image.Image],
    hits: Sequence[bool] | None,
    columns: int = 4,
    target_image: Image.Image | None = None,
    same_as_query: Image.Image | None = None,
) -> Figure:
    """Query (and ground truth, when known) in the top row, then the top-k in a grid, hits framed green.

    `hits` None: no ground truth (a custom query); results get plain frames.
    `same_as_query`: the gallery's copy of the query image, shown first, marked, and not ranked.
    """
    shown = [(same_as_query, "same as query", SAME_COLOR)] if same_as_query is not None else []
    rows = 1 + math.ceil((len(results) + len(shown)) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.3 * rows))
    axes = np.array(figure.subplots(rows, columns)).reshape(rows, columns)
    for cell in axes.flat:
        cell.axis("off")
    header = [(query_image, f'query: "{query_text}"', "black")]
    if target_image is not None:
        header.append((target_image, "ground truth", HIT_COLOR))
    panels = [(axes[0, i], *panel) for i, panel in enumerate(header)]
    for rank, image in enumerate(results):
        if hits is None:
            title, color = f"#{rank + 1}", "black"
        else:
            title, color = (f"#{rank + 1} hit", HIT_COLOR) if hits[rank] else (f"#{rank + 1}", MISS_COLOR)
        shown.append((image, title, color))
    for position, (image, title, color) in enumerate(shown):
        panels.append((axes[1 + position // columns, position % columns], image, title, color))
    for cell, image, title, color in panels:
        cell.axis("on")
        cell.imshow(image, interpolation="nearest")
        cell.set_title(title, fontsize=8, color=color, wrap=True)
        cell.set_xticks([])
        cell.set_yticks([])
        for spine in cell.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(3 if color != "black" else 1)
    figure.tight_layout()
    return figure
