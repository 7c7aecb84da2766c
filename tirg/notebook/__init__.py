"""Helpers for the walkthrough notebooks, which import them from here.

- `paths`: the repository root, and the checkpoint, feature cache or data set a notebook needs,
  with an error naming the command that creates it;
- `display`: figures redrawn in place, TensorBoard inline, the library's log;
- `estimate`: how long training will take, from a timed warm-up;
- `app`: the ipywidgets retrieval app;
- `run` (imported by its own path, not from here): a notebook run headless with parameters injected.
"""

from tirg.notebook.app import RetrievalApp, results_html
from tirg.notebook.display import LiveFigure, LiveTrainingPlot, notebook_logging, show_figure, show_tensorboard
from tirg.notebook.estimate import TrainingEstimate, estimate_training
from tirg.notebook.paths import (
    NOTEBOOK_CHECKPOINT,
    cache_command,
    chdir_to_repository_root,
    pretrained_hint,
    require_checkpoint,
    require_feature_cache,
    require_hashing_dataset,
    train_hint,
)

__all__ = [
    "NOTEBOOK_CHECKPOINT",
    "LiveFigure",
    "LiveTrainingPlot",
    "RetrievalApp",
    "TrainingEstimate",
    "cache_command",
    "chdir_to_repository_root",
    "estimate_training",
    "notebook_logging",
    "pretrained_hint",
    "require_checkpoint",
    "require_feature_cache",
    "require_hashing_dataset",
    "results_html",
    "show_figure",
    "show_tensorboard",
    "train_hint",
]
