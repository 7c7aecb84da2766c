"""Run folders: each run gets a folder of its own, and a run that fails before its first checkpoint leaves none."""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tirg.errors import OutputError

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
