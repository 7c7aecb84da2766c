"""Helpers for the notebooks: artefact checks that name the command creating them, in-place
figure display, TensorBoard when installed, and the ipywidgets retrieval app.

IPython and ipywidgets come with the `notebooks` extra and are imported only when used.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image

from tirg.data import RetrievalDataset
from tirg.errors import CacheError, CheckpointError, DataError, OutputError, TirgError
from tirg.features import MANIFEST, FeatureCache
from tirg.fileio import atomic_write, describe_entries
from tirg.models import ComposeModel
from tirg.plots_notebooks import figure_png, training_curves_figure
from tirg.retrieval import Gallery, query_by_index, query_by_photo
from tirg.train import checkpoint_file

NOTEBOOK_CHECKPOINT = "runs/notebook/best_checkpoint.pth"


def chdir_to_repository_root(start: str | Path | None = None) -> Path:
    """Make the repository root (the first folder up from `start` with pyproject.toml and notebooks/) the cwd.

    Jupyter starts a notebook in its own folder; the notebooks' paths are relative to the root.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            os.chdir(folder)
            return folder
    raise FileNotFoundError(f"no folder above {start} holds pyproject.toml and notebooks/: is this a clone of the tirg repository?")


def train_hint(dataset: str = "css", dataset_path: str = "data/css", model: str = "tirg") -> str:
    return (
        f"run notebooks/01_train.ipynb (it writes {NOTEBOOK_CHECKPOINT}), or "
        f"`tirg train --dataset {dataset} --dataset_path {dataset_path} --model {model}` and set `checkpoint` "
        "to its runs/<run>/latest_checkpoint.pth"
    )


def pretrained_hint(dataset: str, dataset_path: str, model: str) -> str:
    return (
        f"run `make demo` (it writes results/demo/runs/{model}/latest_checkpoint.pth) or "
        f"`tirg train --dataset {dataset} --dataset_path {dataset_path} --model {model}` (it writes runs/<run>/latest_checkpoint.pth)"
    )


def require_checkpoint(path: str | Path, how_to_create: str) -> Path:
    """The checkpoint file (a run folder stands for its latest checkpoint), or an error saying how to make it."""
    file = checkpoint_file(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}. To create it, {how_to_create}")
    return file


# Where each hashing data set comes from and what its folder holds, for the message when it is absent.
HASHING_DATASET_SOURCES = {
    "CUB": (
        "CUB-200-2011 (Caltech-UCSD Birds, non-commercial research use) is published by Caltech at "
        "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz, about 1.1 GB); "
        "unpack it and point `dataset_path` at its CUB_200_2011 folder (the one holding images.txt and images/)"
    ),
    "Stanford_Dogs": (
        "Stanford Dogs is published at http://vision.stanford.edu/aditya86/ImageNetDogs/ (images.tar and lists.tar); "
        "unpack both into one folder and point `dataset_path` at it (the one holding Images/ and train_list.mat)"
    ),
}


def require_hashing_dataset(name: str, path: str | Path) -> Path:
    """The data set folder, or an error saying where the data set comes from and which parameter to set."""
    path = Path(path)
    if not path.is_dir():
        source = HASHING_DATASET_SOURCES.get(name, f"set `dataset_path` to the {name} folder")
        raise DataError(f"{name} data set not found at {path}. {source}, in the parameters cell.")
    return path


def cache_command(checkpoint: str | Path, cache_dir: str | Path) -> str:
    return f"python compute_and_save.py --checkpoint {checkpoint} --out {cache_dir}"


def require_feature_cache(path: str | Path, checkpoint: str | Path) -> Path:
    """The cache folder, or an error naming the compute_and_save.py command that writes it."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise CacheError(
            f"feature cache not found: {path} has no {MANIFEST}. Create it with `{cache_command(checkpoint, path)}`"
            " (or set compute_cache_if_missing = True)"
        )
    return path


def fresh_run_dir(path: str | Path, overwrite: bool) -> Path:
    """A run folder to train into: absent, empty, or an earlier training run, removed only with `overwrite`.

    Anything else (a file, a folder without a tirg run's config.json) is refused, whatever `overwrite` says.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"run_dir {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not _holds_training_run(path):
            raise OutputError(f"refusing to train into {path}: it holds no tirg training run but {describe_entries(path)}")
        if not overwrite:
            raise FileExistsError(f"{path} already holds a run; choose another run_dir or set overwrite_run = True")
        shutil.rmtree(path)
    return path


def _holds_training_run(path: Path) -> bool:
    """Whether `path/config.json` holds the settings `tirg.train` writes there."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"dataset", "model", "num_iters"} <= config.keys()


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


class RetrievalApp:
    """Pick a test query or upload an image, type a modification text, see the top-k.

    With a test query and no text (or its own text), the result marks ground-truth hits; any
    other text, or an uploaded image, is composed with the model and searched the same way. A test
    query's source image is left out of its results, whatever the text; an upload never is.
    """

    def __init__(
        self,
        model: ComposeModel,
        cache: FeatureCache,
        dataset: RetrievalDataset,
        k: int = 16,
        columns: int = 4,
        device: str | torch.device = "cpu",
    ) -> None:
        import ipywidgets as widgets

        self.model, self.cache, self.dataset = model, cache, dataset
        self.k, self.columns, self.device = k, columns, device
        self.source = widgets.ToggleButtons(options=["test query", "uploaded image"], description="query image")
        self.query = widgets.BoundedIntText(value=0, min=0, max=len(cache.query_features) - 1, description="test query")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.text = widgets.Text(description="text", layout=widgets.Layout(width="60%"))
        self.button = widgets.Button(description="Search", button_style="primary")
        self.output = widgets.Output()
        self.query.observe(lambda _: self._show_query_text(), names="value")
        self.button.on_click(lambda _: self.search())
        self._show_query_text()
        self.widget = widgets.VBox(
            [self.source, widgets.HBox([self.query, self.upload]), self.text, self.button, self.output]
        )

    def _show_query_text(self) -> None:
        self.text.placeholder = f"empty: the test query's own text, \"{self.cache.queries['text'].iloc[self.query.value]}\""

    def uploaded_image(self) -> Image.Image:
        if not self.upload.value:
            raise DataError("no image uploaded yet: use the upload button, or pick 'test query'")
        content = self.upload.value[0]["content"]
        return Image.open(io.BytesIO(bytes(content))).convert("RGB")

    def figure(self) -> Figure:
        """The same queries as `tirg retrieve`: a test query (its source left out) or the uploaded photo."""
        text = self.text.value.strip()
        gallery = Gallery.from_cache(self.cache, self.dataset)
        if self.source.value == "uploaded image":
            if not text:
                raise ValueError("type a modification text for the uploaded image")
            found = query_by_photo(self.model, gallery, self.uploaded_image(), text, self.k, self.device, "uploaded image")
        else:
            found = query_by_index(gallery, int(self.query.value), self.k, text or None, self.model, self.device)
        return found.figure(self.columns)

    def search(self) -> None:
        """Redraw the results in the output area; a bad input shows as a message there, not a traceback."""
        from IPython.display import Image as ImageDisplay
        from IPython.display import display

        self.output.clear_output(wait=True)
        try:
            png = figure_png(self.figure())
        except (TirgError, ValueError, OSError) as error:
            self.output.append_stdout(f"{error}\n")
            return
        with self.output:
            display(ImageDisplay(data=png))
