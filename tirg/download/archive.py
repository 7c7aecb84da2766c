"""Unpacking zip and tar archives safely: regular files and folders only, every path inside the target.

An archive holding an absolute path, a `..` step, a link or a device file is refused whole, with
the member named; the caller unpacks into a staging folder, so a refused archive leaves nothing.
"""

from __future__ import annotations

import logging
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from tirg.download.fetch import CHUNK, DownloadError

logger = logging.getLogger(__name__)

WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(DownloadError):
    """An archive member would be written outside the target, or is a link or a special file."""


def unpack(archive: Path, kind: str, dest: Path, strip: str = "") -> int:
    """Unpack `archive` ("zip" or "tar", any compression) into `dest`; returns the files written.

    With `strip`, only the members under the top folder `strip` are unpacked, without that folder;
    the others (e.g. CUB's attributes.txt beside CUB_200_2011/) are skipped and logged.
    """
    dest.mkdir(parents=True, exist_ok=True)
    unpacker = _unpack_zip if kind == "zip" else _unpack_tar
    try:
        written, skipped = unpacker(archive, dest.resolve(), strip)
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as error:
        raise DownloadError(f"{archive} is not a readable {kind} archive ({error}); a web page saved under its name?") from None
    if skipped:
        logger.info("%s: %d members outside %s/ skipped, e.g. %s", archive, len(skipped), strip, skipped[:3])
    if strip and not written:
        raise DownloadError(
            f"{archive} holds no files under {strip}/ (top-level entries: {sorted(set(skipped))[:10]}): its layout has changed"
        )
    return written


def member_path(archive: Path, name: str, dest: Path, strip: str) -> Path | None:
    """Where member `name` goes under `dest` (already resolved); None when it is skipped."""
    posix = name.replace("\\", "/")  # a Windows separator must not hide a `..` step
    path = PurePosixPath(posix)
    if path.is_absolute() or WINDOWS_DRIVE.match(posix):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; the archive is refused")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside the target folder; the archive is refused")
    parts = [p for p in path.parts if p != "."]
    if strip:
        if not parts or parts[0] != strip:
            return None
        parts = parts[1:]
    if not parts:
        return None
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest):
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves outside {dest}; the archive is refused")
    return target


def _write(target: Path, source: IO[bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _place(target: Path | None, name: str, is_dir: bool, open_source: Callable[[], IO[bytes]], strip: str, skipped: list[str]) -> int:
    """Create or write one checked member at `target` (None: outside the kept folder, noted); 1 when a file was written."""
    if target is None:
        _note_skipped(skipped, name, strip)
        return 0
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return 0
    with open_source() as source:
        _write(target, source)
    return 1


def _note_skipped(skipped: list[str], name: str, strip: str) -> None:
    top = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p != "."][:1]
    if top and top != [strip]:  # the stripped top folder itself is not worth a mention
        skipped.append("/".join(top))


def _standard_filter(archive: Path, member: tarfile.TarInfo, dest: Path) -> None:
    """tarfile's own "data" rules, where this Python has them (3.10.12+, 3.11.4+), as a second line of defence."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(member, str(dest))
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} refused ({error})") from None


def _unpack_tar(archive: Path, dest: Path, strip: str) -> tuple[int, list[str]]:
    written, skipped = 0, []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a link (to {member.linkname!r}); links are refused")
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device, pipe or other special file; refused")
            target = member_path(archive, member.name, dest, strip)
            _standard_filter(archive, member, dest)
            written += _place(target, member.name, member.isdir(), partial(tar.extractfile, member), strip, skipped)
    return written, skipped


def _unpack_zip(archive: Path, dest: Path, strip: str) -> tuple[int, list[str]]:
    written, skipped = 0, []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            # The Unix file type, when the zip records one (0 when made elsewhere, or by writers that store permissions only).
            file_type = stat.S_IFMT(info.external_attr >> 16)
            if file_type == stat.S_IFLNK:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; links are refused")
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device, pipe or other special file; refused")
            target = member_path(archive, info.filename, dest, strip)
            written += _place(target, info.filename, info.is_dir(), partial(zf.open, info), strip, skipped)
    return written, skipped
