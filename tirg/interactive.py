"""Helpers for the notebooks: artefact checks that name the command creating them, in-place
figure display, TensorBoard when installed, and the ipywidgets retrieval app.

IPython and ipywidgets come with the `notebooks` extra and are imported only when used.
"""

from __future__ import annotations

import html
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from tirg.checkpoint import checkpoint_file
from tirg.config import TrainConfig
from tirg.data import RetrievalDataset
from tirg.errors import CacheError, CheckpointError, DataError, OutputError, TirgError
from tirg.features import MANIFEST, FeatureCache
from tirg.fileio import atomic_write, describe_entries
from tirg.models import ComposeModel
from tirg.plots.retrieval_figures import retrieval_figure
from tirg.plots.save import figure_png
from tirg.plots.training_curves import training_curves_figure
from tirg.retrieval import Gallery, RetrievalResult, query_by_index, query_by_photo
from tirg.runtime import resolve_device
from tirg.training import train

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


def notebook_logging(verbose: bool = False) -> None:
    """Show the library's log in the notebook: warnings and errors, or with `verbose` its INFO lines too.

    A notebook is an entry point: it configures logging, the library only logs.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)


class _StepClock:
    """A stand-in for the TensorBoard writer of `train`: the seconds each iteration took, from its
    "train/iterations_per_second" (logged at every iteration when log_every is 1)."""

    def __init__(self) -> None:
        self.step_seconds: dict[int, float] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if tag == "train/iterations_per_second":
            self.step_seconds[step] = 1.0 / value


@dataclass(frozen=True)
class TrainingEstimate:
    """How long `config` should train, from a short timed warm-up on the same data, model and device."""

    num_iters: int
    device: str
    seconds_per_iteration: float
    validation_points: int
    seconds_per_validation: float
    warmup_iters: int

    @property
    def seconds(self) -> float:
        return self.num_iters * self.seconds_per_iteration + self.validation_points * self.seconds_per_validation

    def __str__(self) -> str:
        validation = (
            f" and {self.validation_points} validation points of {self.seconds_per_validation:.1f} s" if self.validation_points else ""
        )
        return (
            f"{self.num_iters} iterations on {self.device}: about {_duration(self.seconds)} "
            f"({self.seconds_per_iteration:.2f} s per iteration{validation}, timed on a {self.warmup_iters}-iteration warm-up); "
            "early stopping may end it sooner"
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def estimate_training(config: TrainConfig, warmup_iters: int = 6) -> TrainingEstimate:
    """Train a copy of `config` for `warmup_iters` iterations in a temporary folder (validating halfway when
    `config` validates) and extrapolate: the first iteration (start-up) is left out, each later one counts
    at the median, a validation point at what the iteration after it took beyond that median."""
    if warmup_iters < 4:
        raise ValueError(f"warmup_iters={warmup_iters}: at least 4 are needed (a start-up step, two timed steps, one after validation)")
    validating = config.val_fraction > 0 and config.eval_every > 0
    half = warmup_iters // 2
    warmup = replace(config, num_iters=warmup_iters, log_every=1, eval_every=half if validating else 0, patience=0, checkpoint_every=0)
    clock = _StepClock()
    with tempfile.TemporaryDirectory(prefix="tirg-warmup-") as folder:
        train(warmup, run_dir=folder, writer=clock, evaluate_test=False)
    after_validation = half + 1
    steady = [seconds for step, seconds in clock.step_seconds.items() if step > 1 and not (validating and step == after_validation)]
    per_iteration = float(np.median(steady))
    per_validation = max(0.0, clock.step_seconds[after_validation] - per_iteration) if validating else 0.0
    points = config.num_iters // config.eval_every if validating else 0
    return TrainingEstimate(config.num_iters, str(resolve_device(config.device)), per_iteration, points, per_validation, warmup_iters)


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
    query's source image is left out of its results, whatever the text (where the data set's protocol
    leaves it out: all but FashionIQ); an uploaded image that is in the gallery is shown first,
    marked "same as query", and left out of the ranking likewise.

    The results are a PNG grid (`grid`) and a table of what it shows (`table`); a bad input hides
    both and shows its message (`message`) in their place.
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
        # width auto: the button grows to the chosen file's name instead of cutting it.
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image", layout=widgets.Layout(width="auto"))
        self.text = widgets.Text(description="text", layout=widgets.Layout(width="60%"))
        self.button = widgets.Button(description="Search", button_style="primary")
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.grid = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML()
        self.query.observe(lambda _: self._on_query(), names="value")
        self.upload.observe(lambda _: self._on_upload(), names="value")
        self.button.on_click(lambda _: self.search())
        self._show_query_text()
        self.widget = widgets.VBox(
            [self.source, widgets.HBox([self.query, self.upload]), self.text, self.button, self.message, self.grid, self.table]
        )

    def _show_query_text(self) -> None:
        self.text.placeholder = f'empty: the test query\'s own text, "{self.cache.queries["text"].iloc[self.query.value]}"'

    def _on_query(self) -> None:
        self.source.value = "test query"
        self._show_query_text()

    def _on_upload(self) -> None:
        if self.upload.value:
            name = self.upload.value[0]["name"]
            self.upload.description = f"uploaded: {name}"
            self.upload.tooltip = name
            self.source.value = "uploaded image"

    def uploaded_image(self) -> Image.Image:
        if not self.upload.value:
            raise DataError("no image uploaded yet: use the upload button, or pick 'test query'")
        content = self.upload.value[0]["content"]
        try:
            return Image.open(io.BytesIO(bytes(content))).convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{self.upload.value[0]['name']} is not a readable image ({error})") from None

    def result(self) -> RetrievalResult:
        """The same queries as `tirg retrieve`: a test query (its source left out) or the uploaded photo."""
        text = self.text.value.strip()
        gallery = Gallery.from_cache(self.cache, self.dataset)
        if self.source.value == "uploaded image":
            image = self.uploaded_image()
            if not text:
                raise ValueError("type a modification text for the uploaded image")
            name = self.upload.value[0]["name"]
            return query_by_photo(self.model, gallery, image, text, self.k, self.device, name, set_aside_copy=True)
        return query_by_index(gallery, int(self.query.value), self.k, text or None, self.model, self.device)

    def figure(self) -> Figure:
        return retrieval_figure(self.result(), self.columns)

    def search(self) -> None:
        """Replace the results with the new query's; a bad input replaces them with its message, not a traceback."""
        try:
            result = self.result()
            png = figure_png(retrieval_figure(result, self.columns))
        except (TirgError, ValueError, OSError) as error:
            self.message.value = f"<b style='color:#b00'>{html.escape(str(error))}</b>"
            self.message.layout.display = None
            self.grid.layout.display = self.table.layout.display = "none"
            return
        self.message.layout.display = "none"
        self.grid.value = png
        self.table.value = results_html(result)
        self.grid.layout.display = self.table.layout.display = None


def results_html(result: RetrievalResult) -> str:
    """The grid's contents as an HTML table: the query's source, then rank, gallery id, caption, score, hit, file."""
    rows = result.rows()
    if result.same_as_query is not None:
        same = result.same_as_query
        rows = [
            {
                "rank": "same as query",
                "id": same,
                "path": str(result.dataset.image_files[same]),
                "caption": result.dataset.captions[same],
                "score": None,
                "hit": None,
            },
            *rows,
        ]
    frame = pd.DataFrame(rows, columns=["rank", "id", "caption", "score", "hit", "path"])
    frame = frame.rename(columns={"id": "gallery id", "path": "file"})
    if result.found.hits is None:
        frame = frame.drop(columns="hit")
    heading = f"<p class='tirg-query'>query image: {html.escape(result.query_path)}; text: {html.escape(result.text)!s}</p>"
    return heading + frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", classes="tirg-results")
