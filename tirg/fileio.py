"""Safe outputs: atomic file writes, and output folders that replace only what this tool wrote.

A file is written to a temporary name in its folder, fsynced, then renamed over the target, so a
crash leaves the previous file or the new one, never a partial one.

A folder output (a feature cache, a generated data set, the demo's results, a hashing run) is
written into a staging folder beside the destination and swapped in by rename: the old folder
is renamed aside, the new one renamed in, then the old one deleted. A crash at any moment leaves
one complete folder (under the destination name, or aside, where the next write restores it).
A destination is replaced only when it is empty or holds this tool's own artefact of the same
kind, and only with `overwrite=True`; anything else is refused before any work starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tirg.errors import OutputError

logger = logging.getLogger(__name__)

# mkstemp creates files readable by the owner only; results are meant to be shared.
FILE_MODE = 0o644
DIR_MODE = 0o755
# The marker of folder outputs that have no manifest of their own (the demo's results, hashing runs).
OUTPUT_MARKER = "tirg-output.json"
RUN_FOLDER_FILES = ("latest_checkpoint.pth", "best_checkpoint.pth", "checkpoint.pth", "config.json")
# Each loader's layout, as a test on a folder and the words that name it.
DATASET_LAYOUTS: tuple[tuple[str, Callable[[Path], bool]], ...] = (
    ("a CSS data set (css.json)", lambda p: (p / "css.json").is_file()),
    ("an original CSS data set (*.npy)", lambda p: any(p.glob("css_toy_dataset*.npy"))),
    ("a Fashion200k data set (labels/, test_queries.txt)", lambda p: (p / "labels").is_dir() or (p / "test_queries.txt").is_file()),
    ("a FashionIQ data set (captions/, image_splits/)", lambda p: (p / "captions").is_dir() or (p / "image_splits").is_dir()),
    ("a CUB-200-2011 data set (images.txt)", lambda p: (p / "images.txt").is_file()),
    ("a Stanford Dogs data set (*_list.mat)", lambda p: any(p.glob("*_list.mat"))),
    ("an image data set such as MIT-States (images/)", lambda p: (p / "images").is_dir()),
)


@dataclass(frozen=True)
class OutputKind:
    """A kind of folder output: the JSON file inside that identifies it, its 'format', and the entries it holds.

    `entries`, when given, are all the names such a folder may hold; a folder with anything else
    in it is not replaced, since the extra entries are the user's.
    """

    name: str
    manifest: str
    format: str
    entries: frozenset[str] | None = None


def marked_kind(name: str, format: str, entries: tuple[str, ...]) -> OutputKind:
    """A kind identified by this module's marker file (written into the folder by `atomic_directory`)."""
    return OutputKind(name, OUTPUT_MARKER, format, frozenset((OUTPUT_MARKER, *entries)))


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(binary_file)` on a temporary file, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the `.<name>.*.tmp` files a killed `atomic_write` left in `folder`; only call where no write is in flight."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporary file(s) left by an interrupted save in %s", len(stale), folder)
    return stale


def describe_entries(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def folder_kind_format(folder: Path, manifest: str) -> str | None:
    """The 'format' recorded in `folder/manifest`, or None when there is no such readable JSON object."""
    try:
        with open(folder / manifest) as f:
            content = json.load(f)
    except (OSError, ValueError):
        return None
    return content.get("format") if isinstance(content, dict) else None


def _refused_path(path: Path) -> str | None:
    """Why `path` may never be an output folder, or None."""
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if path == Path(path.anchor):
        return "is a filesystem root"
    if path == cwd or path in cwd.parents:
        return "is the current folder or one of its parents"
    if path == home or path in home.parents:
        return "is the home folder or one of its parents"
    if path.exists() and not path.is_dir():
        return "is an existing file, not a folder"
    return None


def _check_writable(path: Path) -> None:
    """Create and delete a probe where the output's staging folder will go (the nearest existing ancestor)."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {path}: {ancestor} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".tirg-probe-", dir=ancestor)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {ancestor} is not writable ({error.strerror})") from None
    os.close(handle)
    os.unlink(probe)


def check_output_dir(path: str | Path, kind: OutputKind, overwrite: bool = False) -> Path:
    """Refuse `path` as a destination for a `kind` output unless writing there loses nothing; call before long work.

    Allowed: a path that does not exist, an empty folder, or (with `overwrite`) a folder holding only
    an earlier output of the same kind. Refused whatever `overwrite` says: a filesystem root, the
    current folder or a parent of it, the home folder, an existing file, a training run folder, a
    data set folder, and any other folder with something in it. Also refused: a destination whose
    folder cannot be written. Returns the resolved path.
    """
    path = Path(path).expanduser().resolve()
    reason = _refused_path(path)
    if reason:
        raise OutputError(f"refusing to write a {kind.name} to {path}: it {reason}")
    if path.is_dir() and any(path.iterdir()):
        if folder_kind_format(path, kind.manifest) == kind.format:
            foreign = sorted(p.name for p in path.iterdir() if kind.entries is not None and p.name not in kind.entries)
            if foreign:
                raise OutputError(
                    f"refusing to replace {path}: it holds a {kind.name} but also {', '.join(foreign[:5])}, which tirg did not write there"
                )
            if not overwrite:
                raise OutputError(f"{path} already holds a {kind.name}; pass --overwrite (overwrite=True) to replace it")
        else:
            raise OutputError(f"refusing to write a {kind.name} to {path}: it {_describe_foreign(path)}")
    _check_writable(path)
    return path


def check_output_file(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse `path` as a file to write unless it is absent or (with `overwrite`) a file; its folder must be writable."""
    path = Path(path).expanduser().resolve()
    if path.exists():
        if not path.is_file():
            raise OutputError(f"refusing to write the file {path}: a folder or other non-file is there")
        if not overwrite:
            raise OutputError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    _check_writable(path)
    return path


def _describe_foreign(path: Path) -> str:
    run_files = [name for name in RUN_FOLDER_FILES if (path / name).exists()]
    if run_files:
        return f"is a run folder (holds {', '.join(run_files)})"
    for words, matches in DATASET_LAYOUTS:
        if matches(path):
            return f"is {words}"
    return f"is not empty and was not written by tirg as this kind of output (holds {describe_entries(path)})"


def _lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextmanager
def output_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold `.<name>.lock` beside `out_dir` (created exclusively, holding our pid); a live holder means refusal.

    A lock whose pid is no longer running is stale (its writer was killed) and is taken over.
    """
    lock = _lock_path(Path(out_dir))
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder > 0 and _process_alive(holder):
                raise OutputError(f"{out_dir} is being written by another process (pid {holder}; lock file {lock})") from None
            logger.warning("removing the stale lock %s (pid %s is not running)", lock, holder or "unknown")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise OutputError(f"could not take the lock {lock} for {out_dir}")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _leftovers(out_dir: Path, role: str) -> list[Path]:
    return sorted(out_dir.parent.glob(f".{out_dir.name}.{role}-*"))


def recover_interrupted(out_dir: str | Path) -> None:
    """Finish what a killed write to `out_dir` left: restore a folder renamed aside, delete staging folders.

    Call only while holding `output_lock(out_dir)`, so no live writer's folders are touched.
    """
    out_dir = Path(out_dir)
    asides = _leftovers(out_dir, "old")
    if asides and not out_dir.exists():
        # Killed between the two renames of a swap: the aside folder is the last complete version.
        os.replace(asides.pop(), out_dir)
        logger.warning("restored %s from an interrupted replacement", out_dir)
    for leftover in [*asides, *_leftovers(out_dir, "staging")]:
        logger.info("removing %s, left by an interrupted write", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, aside)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(aside, out_dir)
        raise
    shutil.rmtree(aside)


@contextmanager
def atomic_directory(out_dir: str | Path, kind: OutputKind, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder beside `out_dir`; on success it replaces `out_dir` whole, on error it is removed.

    `out_dir` is checked first (`check_output_dir`), and the write holds `output_lock(out_dir)`.
    Marked kinds get their marker written into the folder.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, kind, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir):
        recover_interrupted(out_dir)
        check_output_dir(out_dir, kind, overwrite)  # again: a restored folder, or another writer that finished
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
        try:
            yield staging
            if kind.manifest == OUTPUT_MARKER:
                (staging / OUTPUT_MARKER).write_text(json.dumps({"format": kind.format, "version": 1}) + "\n")
            os.chmod(staging, DIR_MODE)
            _swap_in(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
