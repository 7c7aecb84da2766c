"""The package's shape: no import cycles, imports run down the data flow, small modules and functions.

The import graph is read from the source (every `import` and `from` naming a tirg module, at
module level or inside a function), so it needs no import and runs in well under a second; one
subprocess per search-side module checks what importing it really loads.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "tirg"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Layers of the data flow, bottom first; a module may import its own layer and the layers below.
# A name covers the module or package of that name and everything under it; the longest name wins.
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: errors, files, devices, argument checks; and search over plain arrays (exact,
    # LSH, FAISS peers), which evaluation uses to rank a gallery
    ("tirg.lazy", "tirg.errors", "tirg.fileio", "tirg.runtime", "tirg.validation", "tirg.safe_pickle",
     "tirg.distributed", "tirg.runs", "tirg.metrics", "tirg.index", "tirg.hashing.codes"),
    ("tirg.data", "tirg.hashing.data"),
    ("tirg.text", "tirg.text_encoders", "tirg.models", "tirg.losses", "tirg.checkpoint", "tirg.backbone_cache",
     "tirg.hashing.model", "tirg.hashing.loss", "tirg.hashing.metrics", "tirg.hashing.sampler"),
    ("tirg.training", "tirg.training_setup", "tirg.config", "tirg.optimization", "tirg.evaluate", "tirg.early_stopping",
     "tirg.frozen_backbone", "tirg.compat", "tirg.hashing", "tirg.hashing.train", "tirg.hashing.frozen"),
    ("tirg.features",),
    # index folders built from a feature cache, and what compares or serves searches
    ("tirg.index.folder", "tirg.index.build", "tirg.index.opened", "tirg.compare", "tirg.retrieval",
     "tirg.hashing.composed"),
    ("tirg.plots",),
    ("tirg.cli", "tirg.__main__", "tirg.demo", "tirg.notebook", "tirg.download"),
)  # fmt: skip

TRAINING_MODULES = ("tirg.training", "tirg.training_setup", "tirg.optimization", "tirg.hashing.train")
SEARCH_SIDE = ("tirg.index", "tirg.data", "tirg.retrieval")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`, imports that never run."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tirg modules `name` imports anywhere in its source that runs: `from a import b` names a.b when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skipped = type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return {target for target in found if target in modules and target != name}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            elif target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    """Index into LAYERS of the longest name covering `module`; None for a module no layer names."""
    best: tuple[int, int] | None = None  # (length of the name, layer)
    for layer, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[0]):
                best = (len(name), layer)
    return None if best is None else best[1]


def oversized() -> Iterator[tuple[str, int, int]]:
    """(module path or path::function, lines, limit) for each module or function over its limit."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            yield relative, len(text.splitlines()), MAX_MODULE_LINES
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    yield f"{relative}::{node.name}", lines, MAX_FUNCTION_LINES


def test_the_graph_reader_sees_function_level_and_relative_imports_not_type_only_ones(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nfrom tirg.index import exact\n\nif TYPE_CHECKING:\n    import tirg.data\n\n"
        "def f():\n    from . import text\n    import tirg.models\n"
    )
    modules = {"tirg.index": Path(), "tirg.index.exact": Path(), "tirg.text": Path(), "tirg.models": Path(), "tirg.data": Path()}
    assert imported_modules("tirg.m", source, modules) == {"tirg.index.exact", "tirg.text", "tirg.models"}


def test_the_cycle_finder_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(module for module in module_files() if module != "tirg" and layer_of(module) is None)
    assert not unplaced, f"add these modules to a layer of LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_run_down_the_data_flow() -> None:
    graph = import_graph()
    uphill = sorted(
        (module, target)
        for module, targets in graph.items()
        if module != "tirg"
        for target in targets
        if (layer_of(target) or 0) > (layer_of(module) or 0)
    )
    unexpected = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})" for m, t in uphill]
    assert not unexpected, "imports that run up the data flow:\n" + "\n".join(unexpected)


def test_modules_and_functions_are_small() -> None:
    unexpected = [f"{name}: {lines} lines (limit {limit})" for name, lines, limit in oversized()]
    assert not unexpected, "split by meaning:\n" + "\n".join(unexpected)


def test_search_side_imports_load_no_training_code() -> None:
    # One interpreter imports them in turn and reports what each adds: a training module absent
    # after importing several is absent after importing any one of them alone.
    code = (
        "import importlib, json, sys\n"
        "added = {}\n"
        f"for module in {SEARCH_SIDE!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(module)\n"
        f"    added[module] = sorted(m for m in {TRAINING_MODULES!r} if m in set(sys.modules) - before)\n"
        "print(json.dumps(added))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env)
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)
    unexpected = {module: loaded for module, loaded in added.items() if loaded}
    assert not unexpected, f"importing these loads training code: {unexpected}"


def test_the_package_names_are_its_functions_whichever_module_loads_first() -> None:
    import tirg

    for name in tirg.__all__:
        importlib.import_module(tirg._MODULE_OF[name])  # binds the module to its name on the package, as any import would
        value = getattr(tirg, name)
        assert not isinstance(value, ModuleType) and value.__name__ == name, f"tirg.{name} is {value!r}"
    from tirg import evaluate, train

    assert callable(train) and callable(evaluate)
