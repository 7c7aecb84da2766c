"""The comparison's folder: its CSVs, markdown tables and figures, written whole.

Above both tirg.compare (the numbers and tables) and tirg.plots.comparison (the figures), so the
comparison itself never imports plotting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tirg.compare.report import learned_vs_random_table, two_row_table
from tirg.compare.runner import Comparison
from tirg.fileio import atomic_directory, marked_kind
from tirg.plots.comparison import plot_learned_vs_random, plot_recall_curves, plot_recall_vs_time

# What `write_outputs` writes: its folder is replaced only when it holds nothing else (and with overwrite).
COMPARISON_FILES = (
    "summary.csv",
    "runs.csv",
    "table.md",
    "recall_vs_time.png",
    "recall_at_k.png",
    "learned_vs_random.md",
    "learned_vs_random.png",
)
COMPARISON_RESULTS = marked_kind("search comparison folder", "tirg-search-comparison", COMPARISON_FILES)


def write_outputs(
    comparison: Comparison, out_dir: Path, overlap_target: float, ks: Sequence[int] | None = None, overwrite: bool = False
) -> list[Path]:
    """Write summary.csv, runs.csv, table.md and the two plots as folder out_dir; return the paths written.

    The folder is written whole (staged, then swapped in): an existing one is replaced only when it
    is an earlier comparison's and `overwrite` is set. ks defaults to the cut-offs the comparison
    measured (comparison.ks).
    """
    ks = comparison.ks if ks is None else tuple(ks)
    names = ["summary.csv", "runs.csv", "table.md", "recall_vs_time.png", "recall_at_k.png"]
    with atomic_directory(out_dir, COMPARISON_RESULTS, overwrite) as staging:
        comparison.summary.to_csv(staging / names[0], index=False)
        comparison.runs.to_csv(staging / names[1], index=False)
        (staging / names[2]).write_text(two_row_table(comparison.summary, overlap_target, max(ks), comparison.sampling))
        plot_recall_vs_time(comparison.summary, staging / names[3], k=max(ks))
        plot_recall_curves(comparison.summary, staging / names[4], ks, overlap_target)
        if (comparison.summary["family"] == "learned-hash").any():
            names += ["learned_vs_random.md", "learned_vs_random.png"]
            (staging / names[5]).write_text(learned_vs_random_table(comparison.summary, max(ks)))
            plot_learned_vs_random(comparison.summary, staging / names[6], max(ks))
    return [Path(out_dir) / name for name in names]
