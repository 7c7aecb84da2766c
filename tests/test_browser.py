"""Notebook 03 as a student sees it: JupyterLab in headless Chromium, Run All, then the widget app.

Marked `browser` and left out of `make test` (pyproject's addopts); `.ci/run` runs it after
`make test` with `pytest -m browser`. It needs Debian's `chromium` (apt-get install chromium) and
Playwright from PyPI, which drives that browser (no browser download); without them it skips,
saying which is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from notebook_runner import REPO_ROOT, inject_parameters

from tirg.config import TrainConfig
from tirg.data import CSSGeneratorConfig, generate_css
from tirg.features import compute_and_save
from tirg.runtime import seed_everything
from tirg.training import train

pytestmark = pytest.mark.browser

NOTEBOOK = "03_retrieve_example.ipynb"
STARTUP_SECONDS = 90
RUN_ALL_SECONDS = 150
DIRTY_WATCH_SECONDS = 12  # the old notebooks turned unsaved 3-8 s after the kernel was idle


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium on PATH: install Debian's package (`apt-get install -y chromium`); .ci/run does")


@pytest.fixture(scope="module")
def student_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like a clone after notebooks 01: smoke-size CSS data and a trained checkpoint,
    notebook 03 with its parameters set to them (as the tests inject them), nothing else."""
    root = tmp_path_factory.mktemp("clone")
    (root / "pyproject.toml").write_text("")  # what chdir_to_repository_root looks for
    (root / "notebooks").mkdir()
    generate_css(root / "data" / "css", CSSGeneratorConfig(seed=1, n_train=40, n_test=60))
    seed_everything(0)
    config = TrainConfig(dataset_path=str(root / "data" / "css"), num_iters=2, batch_size=4, embed_dim=64, device="cpu", checkpoint_every=2)
    checkpoint = train(config, run_dir=root / "runs" / "notebook", evaluate_test=False).checkpoint
    compute_and_save(checkpoint, root / "features" / "smoke")
    parameters = {
        "smoke": True, "checkpoint": "runs/notebook/latest_checkpoint.pth", "cache_dir": "features/smoke",
        "custom_image": "data/css/images/test/000003.png", "device": "cpu", "query_index": 0,
    }  # fmt: skip
    nb = inject_parameters(nbformat.read(REPO_ROOT / "notebooks" / NOTEBOOK, as_version=4), parameters)
    nbformat.write(nb, root / "notebooks" / NOTEBOOK)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(student_clone: Path) -> Iterator[str]:
    """JupyterLab serving the clone on 127.0.0.1 with a token; yields the notebook's URL."""
    token, port = secrets.token_hex(16), free_port()
    home = student_clone.parent / "jupyter-home"
    env = {
        **os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "agg", "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "HOME": str(home),
    }  # fmt: skip
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={student_clone}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}", "--ServerApp.disable_check_xsrf=False",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")  # containers run as root; Jupyter refuses otherwise
    log = (student_clone.parent / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {log.name}") from None
                time.sleep(0.5)
        yield f"{base}/lab/tree/notebooks/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still shutting its kernel down
            server.kill()
            server.wait()
        log.close()


def results_of(page) -> dict:
    """The app's grid image source, its query file and the files of its results, best first."""
    return page.evaluate(
        """() => {
            const app = [...document.querySelectorAll('.widget-vbox')].find(b => b.querySelector('.tirg-results, .widget-image'));
            const image = app.querySelector('.widget-image');
            const heading = app.querySelector('.tirg-query');
            const rows = [...app.querySelectorAll('.tirg-results tbody tr')].map(r => r.lastElementChild.textContent.trim());
            return {src: image ? image.src : null, query: heading ? heading.textContent : '', files: rows};
        }"""
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium's path, checked (with Playwright) before anything is built."""
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: pip install 'tirg[browser]' (it drives the system Chromium)"
    )
    return chromium_path()


def test_notebook_03_runs_in_jupyterlab_and_its_app_searches(chromium, lab):
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as CI containers do.
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(RUN_ALL_SECONDS * 1000)
        page.goto(lab)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=STARTUP_SECONDS * 1000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=STARTUP_SECONDS * 1000)
        # Every tab flickers unsaved as the kernel comes up; one whose metadata (language_info, kernelspec)
        # differs from the kernel's turns unsaved for good a few seconds later. Look after that.
        page.wait_for_timeout(DIRTY_WATCH_SECONDS * 1000)
        assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, "opening the notebook marked it unsaved"

        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        search = page.locator(".jp-OutputArea-output button.widget-button", has_text="Search")
        search.wait_for(state="visible")
        page.wait_for_selector(".widget-image")
        page.wait_for_function("() => document.querySelectorAll('.tirg-results tbody tr').length > 0")
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        assert not [text for text in outputs if "VBox(" in text or "Loading widget" in text], "the app shows as text, not widgets"
        assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count(), "a cell wrote to stderr"

        before = results_of(page)
        assert before["files"] and before["src"], before
        query_file = before["query"].split("query image: ")[1].split(";")[0]
        assert before["files"][0] != query_file, "the first result is the query's own source image"

        number = page.locator(".widget-inline-hbox", has=page.locator("label", has_text="test query")).locator("input")
        number.fill("7")
        number.press("Enter")
        search.click()
        page.wait_for_function("src => document.querySelector('.widget-image').src !== src", arg=before["src"])
        page.wait_for_function(
            "query => { const h = document.querySelector('.tirg-query'); return h && h.textContent !== query; }", arg=before["query"]
        )
        after = results_of(page)
        query_file = after["query"].split("query image: ")[1].split(";")[0]
        assert after["files"] and after["files"][0] != query_file and query_file not in after["files"], after
        browser.close()
