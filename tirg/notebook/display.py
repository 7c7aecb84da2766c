"""What a notebook shows: figures redrawn in place, TensorBoard when installed, and the library's log.

IPython comes with the `notebooks` extra and is imported only when used.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tirg.fileio import atomic_write
from tirg.plots.save import figure_png
from tirg.plots.training_curves import training_curves_figure


def notebook_logging(verbose: bool = False) -> None:
    """Show the library's log in the notebook: warnings and errors, or with `verbose` its INFO lines too.

    A notebook is an entry point: it configures logging, the library only logs.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)


class LiveFigure:
    """A figure shown once in the notebook and redrawn in place on each update; also saved to `path`.

    Outside IPython (a plain script) nothing is displayed and the file is still written.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._handle: Any = None

    def update(self, figure: Figure) -> None:
        png = figure_png(figure)
        if self.path is not None:
            atomic_write(self.path, lambda f: f.write(png))
        from IPython.core.interactiveshell import InteractiveShell

        if not InteractiveShell.initialized():
            return
        from IPython.display import Image as ImageDisplay
        from IPython.display import display

        if self._handle is None:
            self._handle = display(ImageDisplay(data=png), display_id=True)
        else:
            self._handle.update(ImageDisplay(data=png))


class LiveTrainingPlot(LiveFigure):
    """`on_point` callback of `tirg.train.train`: redraws the loss curves at every evaluation point."""

    def __call__(self, points: pd.DataFrame, train_loss: pd.DataFrame) -> None:
        self.update(training_curves_figure(points, train_loss))


def show_figure(figure: Figure, path: str | Path | None = None) -> None:
    """Display a figure in the notebook (as PNG, whatever the matplotlib backend) and save it to `path`."""
    LiveFigure(path).update(figure)


def show_tensorboard(log_dir: str | Path) -> str:
    """Show TensorBoard inline when the package and IPython are there; returns what happened, for the notebook to print."""
    if importlib.util.find_spec("tensorboard") is None:
        return f"TensorBoard is not installed (`pip install tensorboard`); skipping the inline view. Its logs are in {log_dir}."
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return f"not running in IPython; run `tensorboard --logdir {log_dir}` to see the logs"
    shell.run_line_magic("load_ext", "tensorboard")
    shell.run_line_magic("tensorboard", f"--logdir {log_dir}")
    return f"TensorBoard on {log_dir}"
