"""Deep hashing figures (notebook 04): loss and test mAP per epoch, and final versus best mAP per code length."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from tirg.hashing.train import HashTrainResult


def hashing_curves_figure(results: Mapping[int, HashTrainResult]) -> Figure:
    """Triplet hashing loss and test mAP@all against epoch, one line per code length (bits)."""
    figure = Figure(figsize=(10, 4))
    loss_axes, map_axes = figure.subplots(1, 2)
    for bits, result in results.items():
        loss_axes.plot([h["epoch"] for h in result.history], [h["loss"] for h in result.history], marker="o", label=f"{bits} bits")
        evaluated = [h for h in result.history if "map_all" in h]
        map_axes.plot([h["epoch"] for h in evaluated], [h["map_all"] for h in evaluated], marker="o", label=f"{bits} bits")
    loss_axes.set(xlabel="epoch", ylabel="triplet hashing loss", title="training loss")
    map_axes.set(xlabel="epoch", ylabel="mAP@all", title="test mAP@all")
    for axes in (loss_axes, map_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def map_per_bits_figure(results: Mapping[int, HashTrainResult]) -> Figure:
    """Final mAP@all beside the best seen during training (selected on the test set), per code length."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    positions = np.arange(len(results))
    axes.bar(positions - 0.2, [r.final.map_all for r in results.values()], 0.4, label="final")
    axes.bar(positions + 0.2, [r.best_map_all for r in results.values()], 0.4, label="best during training (test-selected)")
    axes.set_xticks(positions, [f"{b} bits" for b in results])
    axes.set_ylabel("mAP@all")
    axes.legend()
    figure.tight_layout()
    return figure
