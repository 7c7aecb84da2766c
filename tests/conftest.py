from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tirg.data import CSSGeneratorConfig, generate_css


def _threads_per_worker() -> int:
    """Two torch threads for a serial run; under pytest-xdist the cores are shared out among the workers."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // workers))


# The processes the tests start (notebook kernels, scripts, the CLI) inherit the same budget: idle
# OpenMP threads spin, so a child on every core takes CPU time from the other workers' tests.
THREADS = _threads_per_worker()
torch.set_num_threads(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

TINY_CSS = CSSGeneratorConfig(seed=3, n_train=80, n_test=40, mods_per_scene=4)

REPO_ROOT = Path(__file__).resolve().parents[1]


def root_script(name: str) -> ModuleType:
    """The script `name`.py at the repository root (lsh.py, compute_and_save.py, main.py) as a module,
    so a test calls its `main(argv)` in-process instead of paying a new interpreter's torch import."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO_ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_css(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated CSS data set shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("css") / "css"
    generate_css(root, TINY_CSS)
    return root


def _shared_data_dir() -> Path | None:
    """`../shared/data` beside the clone (CI's layout), or $TIRG_SHARED_DATA, or the workplace copy."""
    candidates = [os.environ.get("TIRG_SHARED_DATA"), REPO_ROOT.parent / "shared" / "data", "/work/shared/data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files found for this project (FashionIQ captions, the CUB-200-2011 subset)."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not beside this clone (set TIRG_SHARED_DATA to its path)")
    return path


@pytest.fixture(scope="session")
def fashion200k_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Fashion200k fixture tree with images (tests/fixture_trees.py), shared by tests that only read it."""
    from fixture_trees import write_fashion200k

    return write_fashion200k(tmp_path_factory.mktemp("f200k") / "Fashion200k")


@pytest.fixture(scope="session")
def mitstates_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MIT-States fixture tree with images, shared by tests that only read it."""
    from fixture_trees import write_mitstates

    return write_mitstates(tmp_path_factory.mktemp("mit") / "mitstates")


@pytest.fixture(scope="session")
def fashioniq_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FashionIQ fixture tree with images (three categories, one image listed twice), shared by readers."""
    from fixture_trees import write_tiny_fiq

    return write_tiny_fiq(tmp_path_factory.mktemp("fiq") / "fashionIQ")
