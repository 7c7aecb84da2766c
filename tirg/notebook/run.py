"""Run a walkthrough notebook headless with some parameters changed, as papermill does.

The parameters go into a new cell after the one tagged `parameters`; the rest of the notebook runs
as written, in the notebook's own folder (as Jupyter starts it). `run_notebooks.py` (and so
`make figures`) and the tests' runner (tests/notebook_runner.py, which adds its own kernel) use it.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager


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


def execute(
    nb: nbformat.NotebookNode,
    folder: str | Path,
    timeout: int | None = None,
    kernel_name: str = "python3",
    kernel_manager: KernelManager | None = None,
) -> nbformat.NotebookNode:
    """Run every cell of `nb` in place, with `folder` as the kernel's working folder, on `kernel_manager`
    (else a kernel `kernel_name`); the kernel is shut down after, even when a cell fails.

    Raises nbclient's CellExecutionError, naming the cell, when one fails; the failing cell's error
    output is in `nb`.
    """
    from nbclient import NotebookClient

    client = NotebookClient(nb, km=kernel_manager, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    finally:
        # Both None once the client has cleaned up a kernel it started itself. A client given its kernel
        # manager leaves the kernel running and its kernel client connected: close both here.
        kc, km = client.kc, client.km
        if kc is not None:
            kc.stop_channels()  # also destroys the zmq context the kernel client made
        if km is not None and km.has_kernel:
            km.shutdown_kernel(now=True)
        # Free the dropped kernel clients now. Left to a later collection, their __del__ can run inside
        # another test's ast.parse, which CPython 3.11 reports as "AST constructor recursion depth mismatch",
        # or after pytest-xdist has closed a worker's stderr.
        del client, kc, km, kernel_manager
        gc.collect()
    return nb


def execute_notebook(
    path: str | Path, parameters: dict[str, Any], timeout: int | None = None, kernel_name: str = "python3"
) -> nbformat.NotebookNode:
    """Run `path` with `parameters` in its own folder on kernel `kernel_name`; returns the executed notebook
    and raises nbclient's CellExecutionError, naming the cell, when one fails."""
    path = Path(path)
    return execute(inject_parameters(nbformat.read(path, as_version=4), parameters), path.parent, timeout, kernel_name)
