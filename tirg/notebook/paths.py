"""Where the notebooks find their inputs: the repository root, and the checkpoint, feature cache or data set
a notebook needs, with an error naming the command that creates it when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

from tirg.checkpoint import checkpoint_file
from tirg.errors import CacheError, CheckpointError, DataError
from tirg.features import MANIFEST

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
