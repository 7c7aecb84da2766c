"""Run a notebook headless with injected parameters, as papermill does, on this interpreter.

    nb = run_notebook(REPO_ROOT / "notebooks/01_train.ipynb", {"smoke": True, ...}, tmp_path)

A thin layer over the library's runner (tirg.notebook.run), adding what a test needs: the kernel
is this test process's Python (a kernelspec written to a temporary folder), with the repository
on its path, so the notebook imports the checkout under test whatever kernelspecs the machine has
installed; and a failing cell becomes a NotebookCellError naming the cell and its source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient.exceptions import CellExecutionError

from tirg.notebook.run import execute, inject_parameters

REPO_ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "tirg-tests"


class NotebookCellError(AssertionError):
    """A cell raised; `index` is its position in the executed notebook (injected cell included)."""

    def __init__(self, path: Path, index: int, source: str, ename: str, evalue: str, traceback: str) -> None:
        super().__init__(
            f"{path.name} cell {index} raised {ename}: {evalue}\n--- cell source ---\n{source}\n--- traceback ---\n{traceback}"
        )
        self.index, self.source, self.ename, self.evalue = index, source, ename, evalue


def _kernel_manager(kernels_dir: Path) -> KernelManager:
    import ipykernel.kernelspec

    spec_dir = kernels_dir / KERNEL_NAME
    if not spec_dir.is_dir():
        kernels_dir.mkdir(parents=True, exist_ok=True)
        ipykernel.kernelspec.write_kernel_spec(spec_dir)  # argv: this interpreter, sys.executable
    spec_file = spec_dir / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["env"] = {"PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "agg"}
    spec_file.write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _cell_error(path: Path, nb: nbformat.NotebookNode) -> NotebookCellError | None:
    """The first cell's error output in the executed notebook, as a NotebookCellError."""
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            error = errors[0]
            return NotebookCellError(path, index, cell.source, error["ename"], error["evalue"], "\n".join(error["traceback"]))
    return None


def run_notebook(path: Path, parameters: dict[str, Any], work_dir: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute `path` with `parameters`; return the executed notebook or raise NotebookCellError.

    The executed copy is also written to `work_dir/<name>` for inspection. The library runner shuts
    the kernel down and frees its clients (gc.collect) after the run, pass or fail.
    """
    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), parameters)
    try:
        execute(nb, path.parent, timeout, kernel_manager=_kernel_manager(work_dir / "kernels"))
    except CellExecutionError:
        error = _cell_error(path, nb)
        if error is not None:
            raise error from None
        raise
    finally:
        nbformat.write(nb, work_dir / path.name)
    return nb
