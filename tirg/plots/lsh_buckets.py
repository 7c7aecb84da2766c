"""LSH bucket sizes: how evenly a setting spreads the gallery (counts from tirg.compare.buckets)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure


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
