"""`tirg data download`: fetch a source's parts, verify them, lay them out, check the result, place it.

Files are fetched into `<root>/downloads/` (kept: a second download of the same file is not
needed, and a partial one is resumed). The source's folder `<root>/<folder>` is assembled in a
staging folder beside it, checked there with the loader that will read it, and renamed into
place with a manifest (`.tirg-download.json`); a folder without that manifest is never touched.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tirg.download.archive import unpack
from tirg.download.fetch import DownloadError, corrupt_path, fetch, mismatch, partial_path
from tirg.download.sources import SOURCES, Part, Source
from tirg.fileio import OutputKind, atomic_directory

logger = logging.getLogger(__name__)

MANIFEST = ".tirg-download.json"
MANIFEST_FORMAT = "tirg-download"
# A placed data set is never replaced: a second call finds it ready and does nothing.
DOWNLOADED = OutputKind("downloaded data set", MANIFEST, MANIFEST_FORMAT)
DOWNLOADS = "downloads"
READY, ANNOTATIONS_ONLY, PRESENT, MANUAL = "ready", "annotations only", "already present", "manual steps needed"


@dataclass
class DownloadResult:
    """What a download did: `status` (ready, annotations only, already present, manual steps needed),
    the source's folder, and lines for the user (the check's report, steps, the next command)."""

    source: str
    status: str
    path: Path
    lines: list[str] = field(default_factory=list)


def get_source(name: str, sources: Mapping[str, Source] = SOURCES) -> Source:
    if name not in sources:
        raise ValueError(f"unknown source {name!r}; choose from {sorted(sources)} (tirg data download --list)")
    return sources[name]


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a folder this command wrote, or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def download(
    name: str, root: str | Path, sources: Mapping[str, Source] = SOURCES,
    retries: int = 3, timeout: float = 60.0, progress: bool = False,
) -> DownloadResult:  # fmt: skip
    """Fetch, verify, lay out and check source `name` under `root`; see the module docstring."""
    source = get_source(name, sources)
    root = Path(root)
    target = root / source.folder
    manifest = read_manifest(target)
    if manifest is not None and manifest.get("source") == source.name:
        lines = [
            f"{target} is already in place ({manifest.get('status')}); nothing to do",
            "use it: " + source.use.format(path=target, root=root),
        ]
        return DownloadResult(source.name, PRESENT, target, lines)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(
            f"{target} exists and was not written by `tirg data download {source.name}`; it is left as it is: "
            f"move it or pick another --root"
        )
    downloads = root / DOWNLOADS
    downloads.mkdir(parents=True, exist_ok=True)
    for part in source.parts:
        if not part.manual:
            _obtain(part, downloads / part.name, retries, timeout, progress)
    missing = [part for part in source.parts if part.manual and not (downloads / part.name).exists()]
    if missing:
        return DownloadResult(source.name, MANUAL, target, manual_steps(source, missing, downloads, target))
    for part in source.parts:
        if part.manual:
            _check_manual(part, downloads / part.name)
    return _assemble(source, downloads, target)


def _obtain(part: Part, path: Path, retries: int, timeout: float, progress: bool) -> None:
    if path.exists():
        # Complete (it was renamed from .part only once verified) or placed by the user: checked, never replaced.
        problem = mismatch(path, part.size, part.sha256, part.md5)
        if problem:
            raise DownloadError(f"{path}: {problem}; remove it to fetch {part.url} again")
        logger.info("%s is already downloaded", path)
        return
    logger.info("fetching %s to %s", part.url, path)
    fetch(part.url, path, part.size, part.sha256, part.md5, retries=retries, timeout=timeout, progress=progress)


def _check_manual(part: Part, path: Path) -> None:
    if part.kind == "folder":
        if not path.is_dir() or not any(p.is_file() for p in path.iterdir()):
            raise DownloadError(f"{path} should be a folder holding {part.what} (from {part.url})")
        return
    if not path.is_file():
        raise DownloadError(f"{path} should be a file: {part.what} (from {part.url})")
    problem = mismatch(path, part.size, part.sha256, part.md5)
    if problem:
        raise DownloadError(f"{path}: {problem}; fetch it again from {part.url}")


def _assemble(source: Source, downloads: Path, target: Path) -> DownloadResult:
    with atomic_directory(target, DOWNLOADED) as staging:
        for part in source.parts:
            path = downloads / part.name
            logger.info("placing %s", path)
            if part.kind == "file":
                (staging / part.dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, staging / part.dest)
            elif part.kind == "folder":
                shutil.copytree(path, staging / part.dest, dirs_exist_ok=True)
            else:
                unpack(path, part.kind, staging / part.dest, part.strip)
        ok, lines = check(source, staging)
        lines = [line.replace(str(staging), str(target)) for line in lines]
        if not ok and not source.images_note:
            raise DownloadError(
                f"{source.name}: the unpacked data does not pass the check; nothing was placed at {target}:\n" + "\n".join(lines)
            )
        status = READY if ok else ANNOTATIONS_ONLY
        files = [{"name": part.name, "url": part.url, "bytes": _size(downloads / part.name)} for part in source.parts]
        manifest = {"format": MANIFEST_FORMAT, "source": source.name, "status": status, "files": files, "check": lines}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if not ok:
        lines.append(source.images_note.format(path=target))
    lines.append("use it: " + source.use.format(path=target, root=target.parent))
    return DownloadResult(source.name, status, target, lines)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def check(source: Source, path: Path) -> tuple[bool, list[str]]:
    """The check `tirg data check` runs (or the hashing loaders, or the checkpoint reader) on `path`."""
    if source.check == "checkpoints":
        return _check_checkpoints(path)
    if source.check in ("CUB", "Stanford_Dogs"):
        return _check_labeled_images(source.check, path)
    from tirg.data.check import check_dataset

    return check_dataset(source.check, path)


def _check_labeled_images(name: str, path: Path) -> tuple[bool, list[str]]:
    from tirg.errors import DataError
    from tirg.hashing.data import SPLITS, load_labeled_images

    ok, lines = True, [f"{name} at {path}"]
    for split in SPLITS:
        try:
            images = load_labeled_images(name, path, split)
        except DataError as error:
            ok = False
            lines.append(f"  {split}: ERROR {error}")
            continue
        lines.append(f"  {split}: images {len(images):,}, classes {images.num_classes}")
    return ok, [*lines, "OK" if ok else "PROBLEMS FOUND"]


def _check_checkpoints(path: Path) -> tuple[bool, list[str]]:
    from tirg.compat.google_tirg import read_original_checkpoint
    from tirg.errors import CheckpointError

    ok, lines = True, [f"original TIRG checkpoints at {path}"]
    for file in sorted(path.glob("*.pth")):
        try:
            original = read_original_checkpoint(file)
            lines.append(f"  {file.name}: {original.model_name}, {original.options.get('dataset')}, iteration {original.iteration:,}")
        except CheckpointError as error:
            ok = False
            lines.append(f"  {file.name}: ERROR {error}")
    return ok, [*lines, "OK" if ok else "PROBLEMS FOUND"]


def manual_steps(source: Source, missing: list[Part], downloads: Path, target: Path) -> list[str]:
    """The steps a user takes by hand for the parts a browser must fetch, and the layout that results."""
    lines = [f"{source.title}: some files need a browser (or a Drive client); nothing is placed until they are there."]
    for number, part in enumerate(missing, start=1):
        lines.append(f"  {number}. Open {part.url} and download {part.what}; put it at {downloads / part.name}")
    lines.append(
        f"  {len(missing) + 1}. Run `tirg data download {source.name} --root {downloads.parent}` again: it checks and lays them out as"
    )
    lines.extend(f"       {target}/{entry}" for entry in source.layout)
    return lines


def status(source: Source, root: str | Path) -> str:
    """One word or phrase for `--list`: what is under `root` for `source`."""
    root = Path(root)
    target = root / source.folder
    manifest = read_manifest(target)
    if manifest is not None and manifest.get("source") == source.name:
        return str(manifest.get("status", READY))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return "folder exists, not written by tirg data download"
    downloads = root / DOWNLOADS
    if any(corrupt_path(downloads / part.name).exists() for part in source.parts):
        return "checksum mismatch (see downloads/*.corrupt)"
    fetched = [part for part in source.parts if (downloads / part.name).exists()]
    if any(partial_path(downloads / part.name).exists() for part in source.parts):
        return "partial download (resumable)"
    if fetched and any(part.manual and part not in fetched for part in source.parts):
        return f"downloaded {len(fetched)} of {len(source.parts)} files; needs manual steps"
    if fetched:
        return f"downloaded {len(fetched)} of {len(source.parts)} files, not laid out"
    return "not downloaded" + (" (needs manual steps)" if any(part.manual for part in source.parts) else "")


def list_sources(root: str | Path, sources: Mapping[str, Source] = SOURCES) -> list[str]:
    """One line per source: name, status under `root`, folder, what it is."""
    rows = [(s.name, status(s, root), str(Path(root) / s.folder), s.title) for s in sources.values()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0])).rstrip() for row in rows]
