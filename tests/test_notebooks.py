"""The walkthrough notebooks run headless at smoke size, write their figures, and are committed stripped."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from notebook_runner import REPO_ROOT, NotebookCellError, parameters_cell_index, run_notebook
from tirg.checkpoint import load_checkpoint
from tirg.data import CSSGeneratorConfig, generate_css

NOTEBOOKS = REPO_ROOT / "notebooks"
# More test images than the top 100 the comparison ranks.
NOTEBOOK_CSS = CSSGeneratorConfig(seed=1, n_train=60, n_test=120)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.load()
        assert min(image.size) > 50, (path, image.size)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notebooks")
    generate_css(root / "css", NOTEBOOK_CSS)
    return root


@pytest.fixture(scope="module")
def trained(work: Path) -> nbformat.NotebookNode:
    """Notebook 01 at smoke size; 02 and 03 read the best checkpoint it keeps, as in the walkthrough."""
    parameters = {"smoke": True, "dataset_path": str(work / "css"), "run_dir": str(work / "run"), "figures_dir": str(work / "figures"), "device": "cpu"}
    return run_notebook(NOTEBOOKS / "01_train.ipynb", parameters, work)


def later_parameters(work: Path) -> dict:
    return {
        "smoke": True, "checkpoint": str(work / "run" / "best_checkpoint.pth"), "cache_dir": str(work / "cache"),
        "figures_dir": str(work / "figures"), "device": "cpu",
    }  # fmt: skip


def test_train_notebook_keeps_the_best_checkpoint_and_plots_the_losses(work, trained):
    assert_png(work / "figures" / "training_curves.png")
    best = load_checkpoint(work / "run" / "best_checkpoint.pth")
    assert best["iteration"] in (1, 2)  # smoke: validation points at iterations 1 and 2
    lines = (work / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2]
    assert all("R@1" not in json.loads(line) for line in lines)  # no test evaluation nobody asked for
    training_cell = next(cell for cell in trained.cells if "train(config" in cell.source)
    assert any("image/png" in output.get("data", {}) for output in training_cell.outputs), "no live plot displayed"


@pytest.mark.parametrize(
    ("dataset", "fixture", "options"),
    [
        ("fashion200k", "fashion200k_tree", {"val_fraction": 0.3}),
        ("mitstates", "mitstates_tree", {"val_fraction": 0.3}),
        # Four training pairs on four sources: half held out leaves a batch of two.
        ("fashionIQ", "fashioniq_tree", {"val_fraction": 0.5, "batch_size": 2}),
    ],
)
def test_train_notebook_keeps_the_best_checkpoint_on_real_data_set_formats(dataset, fixture, options, request, tmp_path):
    # Fixture images are 8 px; 64 px keeps ResNet-18's last maps above 1x1 (smaller ones make batch norm blow up).
    parameters = {
        "smoke": True, "dataset": dataset, "dataset_path": str(request.getfixturevalue(fixture)), "image_size": 64,
        "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures"), "device": "cpu", **options,
    }  # fmt: skip
    run_notebook(NOTEBOOKS / "01_train.ipynb", parameters, tmp_path)
    best = load_checkpoint(tmp_path / "run" / "best_checkpoint.pth")
    assert best["config"]["dataset"] == dataset and best["iteration"] in (1, 2)
    assert_png(tmp_path / "figures" / "training_curves.png")


def test_compute_recall_notebook_writes_the_comparison(work, trained):
    run_notebook(NOTEBOOKS / "02_compute_recall.ipynb", {**later_parameters(work), "results_dir": str(work / "results")}, work)
    for figure in (work / "figures" / "compare_result.png", work / "figures" / "lsh_bucket_sizes.png",
                   work / "results" / "recall_at_k.png", work / "results" / "recall_vs_time.png"):  # fmt: skip
        assert_png(figure)
    assert (work / "cache" / "manifest.json").is_file()
    assert "No hashing (exact)" in (work / "results" / "table.md").read_text()


def test_retrieve_example_notebook_draws_queries_and_builds_the_widget(work, trained):
    custom = work / "css" / "images" / "test" / "000003.png"
    nb = run_notebook(NOTEBOOKS / "03_retrieve_example.ipynb", {**later_parameters(work), "custom_image": str(custom)}, work)
    assert_png(work / "figures" / "retrieval_random_query.png")
    assert_png(work / "figures" / "retrieval_custom_query.png")
    widget_cell = next(cell for cell in nb.cells if "RetrievalApp(" in cell.source)
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in widget_cell.outputs)


@pytest.mark.parametrize(
    ("notebook", "parameters", "command"),
    [
        ("01_train.ipynb", {"pretrained_model": "{work}/nowhere.pth"}, "tirg train --dataset css"),
        ("02_compute_recall.ipynb", {"checkpoint": "{work}/nowhere.pth"}, "tirg train --dataset css"),
        ("03_retrieve_example.ipynb", {"checkpoint": "{work}/run/best_checkpoint.pth", "compute_cache_if_missing": False, "cache_dir": "{work}/no_cache"},
         "python compute_and_save.py --checkpoint {work}/run/best_checkpoint.pth --out {work}/no_cache"),
    ],
)  # fmt: skip
def test_a_missing_artefact_stops_at_the_first_cell_that_needs_it(work, trained, notebook, parameters, command):
    values = {"smoke": True, "dataset_path": str(work / "css"), "run_dir": str(work / "unused_run"), "figures_dir": str(work / "unused_figures"), "device": "cpu"}
    values.update({name: value.format(work=work) if isinstance(value, str) else value for name, value in parameters.items()})
    if notebook != "01_train.ipynb":
        values = {name: value for name, value in values.items() if name not in ("dataset_path", "run_dir")}
    with pytest.raises(NotebookCellError) as raised:
        run_notebook(NOTEBOOKS / notebook, values, work)
    error = raised.value
    assert command.format(work=work) in error.evalue
    assert "require_checkpoint(" in error.source or "require_feature_cache(" in error.source
    executed = nbformat.read(work / notebook, as_version=4)
    failing = [i for i, cell in enumerate(executed.cells) if any(o.get("output_type") == "error" for o in cell.get("outputs", []))]
    needing = [i for i, cell in enumerate(executed.cells) if "require_checkpoint(" in cell.source or "require_feature_cache(" in cell.source]
    assert failing == [error.index] == needing[:1]
    assert not (work / "unused_figures").exists()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_stripped_thin_and_relative(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    parameters = parameters_cell_index(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {index} has outputs; strip them"
        tree = ast.parse(cell.source)
        defined = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"{path.name} cell {index} defines a function or class; move it into the package"
        if index != parameters:
            absolute = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(("/", "~"))]
            assert not absolute, f"{path.name} cell {index} names a path outside the repository: {absolute}"
