"""The walkthrough notebooks run headless at smoke size, write their figures, and are committed stripped."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from notebook_runner import REPO_ROOT, NotebookCellError, run_notebook
from PIL import Image

from tirg.checkpoint import load_checkpoint
from tirg.data import CSSGeneratorConfig, generate_css
from tirg.features import load_feature_cache
from tirg.notebook.run import parameters_cell_index

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
    parameters = {
        "smoke": True,
        "dataset_path": str(work / "css"),
        "run_dir": str(work / "run"),
        "figures_dir": str(work / "figures"),
        "device": "cpu",
    }
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
    training_cell = next(cell for cell in trained.cells if "train(\n        config" in cell.source)
    assert any("image/png" in output.get("data", {}) for output in training_cell.outputs), "no live plot displayed"
    estimate = next(cell for cell in trained.cells if "estimate_training(" in cell.source)
    assert estimate.outputs[0]["text"].startswith("2 iterations on cpu: about "), estimate.outputs
    assert_quiet(trained)


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
        "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures"), "device": "cpu", "estimate_time": False, **options,
    }  # fmt: skip
    run_notebook(NOTEBOOKS / "01_train.ipynb", parameters, tmp_path)
    best = load_checkpoint(tmp_path / "run" / "best_checkpoint.pth")
    assert best["config"]["dataset"] == dataset and best["iteration"] in (1, 2)
    assert_png(tmp_path / "figures" / "training_curves.png")


def assert_quiet(nb: nbformat.NotebookNode) -> None:
    """No stderr output and no INFO log line anywhere: what a student sees by default."""
    outputs = [output for cell in nb.cells for output in cell.get("outputs", [])]
    stderr = [output["text"] for output in outputs if output.get("name") == "stderr"]
    assert stderr == [], stderr
    texts = [output.get("text", "") for output in outputs] + [str(output.get("data", {}).get("text/plain", "")) for output in outputs]
    assert not [text for text in texts if "INFO " in text]


def test_compute_recall_notebook_writes_the_comparison_with_a_real_spread(work, trained):
    # The default 5,000 queries per sample against 120 test queries: bootstrap samples, as on the demo data.
    nb = run_notebook(NOTEBOOKS / "02_compute_recall.ipynb", {**later_parameters(work), "results_dir": str(work / "results")}, work)
    assert_quiet(nb)
    summary = pd.read_csv(work / "results" / "summary.csv").set_index("method")
    assert summary.loc["exact", "recall@10_std"] > 0 and summary.loc["exact", "recall@50_std"] > 0
    n = len(load_feature_cache(work / "cache").query_features)
    table = (work / "results" / "table.md").read_text()
    assert f"over 2 bootstrap samples of {n} queries (drawn with replacement from the split's {n})" in table
    # What the kernel reports is what the committed notebook holds, so opening it changes nothing.
    committed = nbformat.read(NOTEBOOKS / "02_compute_recall.ipynb", as_version=4)
    assert nb.metadata.language_info == committed.metadata.language_info
    for figure in (work / "figures" / "compare_result.png", work / "figures" / "lsh_bucket_sizes.png",
                   work / "results" / "recall_at_k.png", work / "results" / "recall_vs_time.png"):  # fmt: skip
        assert_png(figure)
    assert (work / "cache" / "manifest.json").is_file()
    assert "No hashing (exact)" in (work / "results" / "table.md").read_text()


def test_retrieve_example_notebook_draws_queries_and_builds_the_widget(work, trained):
    custom = work / "css" / "images" / "test" / "000003.png"
    nb = run_notebook(NOTEBOOKS / "03_retrieve_example.ipynb", {**later_parameters(work), "custom_image": str(custom)}, work)
    assert_quiet(nb)
    assert_png(work / "figures" / "retrieval_random_query.png")
    assert_png(work / "figures" / "retrieval_custom_query.png")
    widget_cell = next(cell for cell in nb.cells if "RetrievalApp(" in cell.source)
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in widget_cell.outputs)


@pytest.mark.parametrize(
    ("notebook", "parameters", "command"),
    [
        ("01_train.ipynb", {"pretrained_model": "{work}/nowhere.pth"}, "tirg train --dataset css"),
        ("02_compute_recall.ipynb", {"checkpoint": "{work}/nowhere.pth"}, "tirg train --dataset css"),
        (
            "03_retrieve_example.ipynb",
            {"checkpoint": "{work}/run/best_checkpoint.pth", "compute_cache_if_missing": False, "cache_dir": "{work}/no_cache"},
            "python compute_and_save.py --checkpoint {work}/run/best_checkpoint.pth --out {work}/no_cache",
        ),
    ],
)
def test_a_missing_artefact_stops_at_the_first_cell_that_needs_it(work, trained, notebook, parameters, command):
    values = {
        "smoke": True,
        "dataset_path": str(work / "css"),
        "run_dir": str(work / "unused_run"),
        "figures_dir": str(work / "unused_figures"),
        "device": "cpu",
    }
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
    needing = [
        i for i, cell in enumerate(executed.cells) if "require_checkpoint(" in cell.source or "require_feature_cache(" in cell.source
    ]
    assert failing == [error.index] == needing[:1]
    assert not (work / "unused_figures").exists()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_stripped_thin_and_relative(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    # JupyterLab rewrites a notebook whose metadata or layout differs from its own (the tab shows unsaved).
    assert path.read_text() == nbformat.writes(nb) + "\n", f"{path.name} is not laid out as JupyterLab saves it"
    assert nb.metadata.kernelspec == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    assert set(nb.metadata.language_info) >= {"codemirror_mode", "file_extension", "mimetype", "name", "pygments_lexer", "version"}
    parameters = parameters_cell_index(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {index} has outputs; strip them"
        tree = ast.parse(cell.source)
        defined = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"{path.name} cell {index} defines a function or class; move it into the package"
        if index != parameters:
            absolute = [
                n.value
                for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(("/", "~"))
            ]
            assert not absolute, f"{path.name} cell {index} names a path outside the repository: {absolute}"


WALKTHROUGH = ["01_train.ipynb", "02_compute_recall.ipynb", "03_retrieve_example.ipynb", "04_deep_hashing.ipynb"]
OUTPUT_PARAMETERS = ("run_dir", "runs_dir", "cache_dir", "results_dir", "figures_dir")


@pytest.mark.parametrize("name", WALKTHROUGH)
def test_code_lines_fit_the_notebook_width(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    long = [line for cell in nb.cells if cell.cell_type == "code" for line in cell.source.splitlines() if len(line) > 88]
    assert long == [], f"{name}: wrap these lines to 88 characters"


def test_notebook_defaults_write_only_where_git_ignores():
    """Run with their defaults, the notebooks leave `git status` clean: every output folder is ignored."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    folders = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tree = ast.parse(nb.cells[parameters_cell_index(nb)].source)
        for node in tree.body:
            if isinstance(node, ast.Assign) and node.targets[0].id in OUTPUT_PARAMETERS:
                folders[f"{path.name}:{node.targets[0].id}"] = ast.literal_eval(node.value)
    assert {"01_train.ipynb:figures_dir", "02_compute_recall.ipynb:results_dir", "03_retrieve_example.ipynb:figures_dir"} <= folders.keys()
    for where, folder in folders.items():
        probe = f"{folder}/probe.png"
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO_ROOT).returncode == 0
        assert ignored, f"{where} = {folder!r}: files written there would show in `git status`"


def test_run_notebooks_script_runs_a_notebook_with_parameters_set(tmp_path, capsys):
    import run_notebooks

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('figures_dir = "results/notebook_figures"\nrepeats = 5', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from pathlib import Path\nPath(figures_dir).mkdir()\n(Path(figures_dir) / 'n.txt').write_text(str(repeats))"
        ),
    ]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    assert run_notebooks.main(["--set", f"figures_dir={tmp_path / 'images'}", "--set", "repeats=2", str(path)]) == 0
    assert (tmp_path / "images" / "n.txt").read_text() == "2"
    assert run_notebooks.main(["--set", f"figures_dir={tmp_path / 'images'}", str(path)]) == 1  # the folder exists now
    assert "tiny.ipynb failed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_notebooks.main(["--set", "no equals sign", str(path)])
