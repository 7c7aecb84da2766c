"""Run a walkthrough notebook headless with some parameters changed, as papermill does.

The parameters go into a new cell after the one tagged `parameters`; the rest of the notebook runs
as written. `run_notebooks.py` (and so `make figures`) and the tests use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat


def parameters_cell_index(nb: nbformat.NotebookNode) -> int:
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Insert `name = repr(value)` lines after the parameters cell (papermill's `injected-parameters` cell)."""
    source = "# Injected parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(parameters_cell_index(nb) + 1, cell)
    return nb


def execute_notebook(
    path: str | Path, parameters: dict[str, Any], timeout: int | None = None, kernel_name: str = "python3"
) -> nbformat.NotebookNode:
    """Run `path` with `parameters` in its own folder (as Jupyter starts it) on kernel `kernel_name`; returns
    the executed notebook and raises nbclient's CellExecutionError, naming the cell, when one fails."""
    from nbclient import NotebookClient

    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), parameters)
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb
