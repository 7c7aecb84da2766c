"""Run notebooks/04_deep_hashing.ipynb headless at smoke size on a CUB-layout fixture."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from hashing_fixtures import write_cub
from PIL import Image

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_deep_hashing.ipynb"
FIGURES = ("training_curve.png", "map_per_bits.png", "neighbours.png")


def test_notebook_runs_and_writes_figures(tmp_path: Path) -> None:
    from notebook_runner import run_notebook

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it with outputs stripped"
    root = write_cub(tmp_path / "CUB_200_2011", n_classes=4, per_class=6, n_train_per_class=4)
    figures = tmp_path / "figures"
    parameters = {
        "repo_root": str(tmp_path),
        "dataset_path": str(root),
        "runs_dir": "runs",
        "figures_dir": str(figures),
        "bits_list": [8, 16],
        "image_size": 32,
        "batch_size": 8,
        "classes_per_batch": 2,
        "smoke": True,
    }
    run_notebook(NOTEBOOK, parameters, tmp_path, timeout=600)
    for name in FIGURES:
        with Image.open(figures / name) as image:
            assert image.format == "PNG" and image.size[0] > 100


def test_without_the_data_set_the_notebook_stops_saying_where_cub_comes_from(tmp_path: Path) -> None:
    from notebook_runner import NotebookCellError, run_notebook

    from tirg.notebook.run import parameters_cell_index

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = notebook.cells[parameters_cell_index(notebook)].source
    assert "shared" not in parameters, "the default dataset_path must not point outside the clone"
    with pytest.raises(NotebookCellError) as raised:
        run_notebook(NOTEBOOK, {"repo_root": str(tmp_path), "smoke": True}, tmp_path)
    error = raised.value
    assert error.ename == "DataError" and "require_hashing_dataset(" in error.source
    assert str(tmp_path / "data" / "CUB_200_2011") in error.evalue
    assert "https://www.vision.caltech.edu/datasets/cub_200_2011/" in error.evalue and "`dataset_path`" in error.evalue
    assert not (tmp_path / "results").exists()
