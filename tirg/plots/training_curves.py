"""Training curves: loss (training and validation, best point marked) and test recall against iteration."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


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
