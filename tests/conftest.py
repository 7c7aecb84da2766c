from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tirg.data import CSSGeneratorConfig, generate_css

torch.set_num_threads(2)

TINY_CSS = CSSGeneratorConfig(seed=3, n_train=80, n_test=40, mods_per_scene=4)


@pytest.fixture(scope="session")
def tiny_css(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated CSS data set shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("css") / "css"
    generate_css(root, TINY_CSS)
    return root
