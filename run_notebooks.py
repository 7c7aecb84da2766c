"""Run walkthrough notebooks headless, in order, with parameters changed; nothing is written but what they write.

    python run_notebooks.py --set figures_dir=images notebooks/01_train.ipynb notebooks/02_compute_recall.ipynb

`make figures` runs notebooks 01-03 this way to redraw the README's figures in images/ (their default
is results/notebook_figures, so a student's runs never touch the tracked files).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from tirg.notebook.run import execute_notebook


def parameter(text: str) -> tuple[str, object]:
    """NAME=VALUE; VALUE is a Python literal (42, True, "a b", None) or else a plain string."""
    name, separator, value = text.partition("=")
    if not separator or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected NAME=VALUE, e.g. figures_dir=images")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--set", dest="parameters", type=parameter, action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    from nbclient.exceptions import CellExecutionError

    for path in args.notebooks:
        print(f"running {path}", flush=True)
        try:
            execute_notebook(path, dict(args.parameters))
        except CellExecutionError as error:
            print(f"run_notebooks.py: {path} failed:\n{error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
