"""Figures, one module per family, each built as a `matplotlib.figure.Figure` (never through pyplot).

save (the one atomic save), retrieval_grid (query above its ranked results) and retrieval_figures
(tirg.retrieval's results drawn with it), training_curves, model_recall (the demo's bars),
comparison (the search comparison's figures) and comparison_report (its whole output folder),
lsh_buckets (bucket-size histograms).
"""
