"""Run folders, every one the project creates: a new time-stamped folder per command-line run
(`tirg train`, `tirg hash train`), a named folder a notebook trains into (replaced only with its
overwrite setting, and only when it holds a tirg run), and a run that fails before its first
checkpoint leaves none."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tirg.errors import OutputError
from tirg.fileio import describe_entries

logger = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%d-%H%M%S"


def create_run_dir(parent: str | Path, name: str) -> Path:
    """Create `parent/name` exclusively; when it exists, `name-1`, `name-2`, ... (never an existing folder)."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot create run folders under {parent}: it or one of its parents is a file") from None
    for attempt in itertools.count():
        candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def new_run_dir(log_dir: str | Path, suffix: str = "") -> Path:
    """A new run folder `log_dir/<YYYYmmdd-HHMMSS><suffix>`, created exclusively (see create_run_dir)."""
    return create_run_dir(log_dir, datetime.now().strftime(STAMP_FORMAT) + suffix)


def hash_run_name(dataset_name: str, bits: int) -> str:
    """The name of a hashing run's folder: `tirg hash train` puts its time stamp before it, notebook 04 uses it bare."""
    return f"{dataset_name}_{bits}bits"


def fresh_run_dir(path: str | Path, overwrite: bool) -> Path:
    """A run folder to train into: absent, empty, or an earlier training run, removed only with `overwrite`.

    Anything else (a file, a folder without a tirg run's config.json) is refused, whatever `overwrite` says.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"run_dir {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not _holds_training_run(path):
            raise OutputError(f"refusing to train into {path}: it holds no tirg training run but {describe_entries(path)}")
        if not overwrite:
            raise FileExistsError(f"{path} already holds a run; choose another run_dir or set overwrite_run = True")
        shutil.rmtree(path)
    return path


def _holds_training_run(path: Path) -> bool:
    """Whether `path/config.json` holds the settings `tirg.train` writes there."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"dataset", "model", "num_iters"} <= config.keys()


@contextmanager
def removed_unless_checkpointed(run_dir: str | Path, checkpoints: Sequence[str]) -> Iterator[Path]:
    """Delete `run_dir`, a folder the caller created for this run, when the body fails before any of `checkpoints` exists in it.

    A failure after the first checkpoint keeps the folder: the run can be resumed or inspected.
    """
    run_dir = Path(run_dir)
    try:
        yield run_dir
    except BaseException:
        if not any((run_dir / name).exists() for name in checkpoints):
            logger.info("removing %s: the run failed before its first checkpoint", run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
