# The two commands a user needs: `make demo` and `make test`.
# Each creates .venv when it is absent and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo figures test lint browser-test bench bench-quick lab clean

# pip byte-compiles the ~17,000 Python files of the dependencies one at a time, about 2 of the
# install's 4 minutes here; compileall does it on every core. The .pyc files are needed where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines): without them each process compiles
# torch again. A few files of torch's own tests are written for newer Pythons and fail to compile,
# as they do under pip, which ignores them: so compileall's exit status is ignored too.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e ".[dev,notebooks,text,pretrained]"
	$(PY) -m compileall -q -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || true
	touch $(INSTALLED)

install: $(INSTALLED)

# --overwrite: the demo replaces only its own earlier results (marked) and the figures it draws.
demo: $(INSTALLED)
	$(VENV)/bin/tirg demo --overwrite

# `make test` runs `make lint` (ruff) before pytest; `make test LINT_IN_TEST=0` skips it.
LINT_IN_TEST ?= 1

# pytest-xdist runs the tests in parallel processes, one per core and at most 4 (`make test
# TEST_WORKERS=0`: serially). --dist worksteal: each worker starts on a contiguous share of the tests,
# so a file's module fixtures are mostly built once, and an idle worker takes half of a busy one's
# queue. On 2 CPU cores the suite takes about 5 min 45 s instead of 10 min: run serially, it keeps
# one core busy most of the time, mostly waiting on one child (a notebook kernel or a script, whose
# torch and torchvision imports take ~7 s).
TEST_WORKERS ?= auto
test: $(INSTALLED) $(if $(filter 1,$(LINT_IN_TEST)),lint)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist worksteal

# ruff's settings (line length, rules) are in pyproject.toml.
lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The README's figures that notebooks 01-03 draw (images/training_curves.png, compare_result.png,
# lsh_bucket_sizes.png, retrieval_*_query.png), from a fresh notebook run with their defaults; a
# student's own runs write to results/notebook_figures instead. `make demo` draws the others.
FIGURE_NOTEBOOKS := notebooks/01_train.ipynb notebooks/02_compute_recall.ipynb notebooks/03_retrieve_example.ipynb
figures: $(INSTALLED)
	$(PY) run_notebooks.py --set figures_dir=images $(FIGURE_NOTEBOOKS)

# Notebook 03 in JupyterLab in headless Chromium (Debian's chromium package; .ci/run installs it).
browser-test: $(INSTALLED)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[browser]"
	$(PY) -m pytest -q -m browser tests/test_browser.py

bench: $(INSTALLED)
	$(PY) benchmarks/run_all.py

bench-quick: $(INSTALLED)
	$(PY) benchmarks/run_all.py --quick

# Jupyter refuses to run as root unless told; containers often run as root.
lab: $(INSTALLED)
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf runs results features .pytest_cache
