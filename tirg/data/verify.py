"""Image files checked before work starts, so a bad file is named up front, not hours into a run.

The fast check (`find_image_problems(paths)`) opens each file, lets PIL identify it from its header
(no pixels are decoded) and reads its last bytes: a PNG must end with its IEND chunk and a JPEG with
its end-of-image marker, which is what a copy or download cut short lacks. A JPEG whose marker is
not near the end is decoded once before it is called truncated, because some cameras append data
after the image (motion photos). Other formats get the header check only. `decode=True` also decodes
every image, as `tirg data check` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tirg.errors import DataError

# How far from the end of a file its end marker may lie (allowing a little padding after it).
TAIL_BYTES = 1024
END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}
# What PIL raises for a file it cannot identify or decode (DecompressionBombError is none of the others).
UNREADABLE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageProblem:
    """A file that cannot serve as an image: `kind` is 'missing', 'truncated' or 'unreadable'."""

    path: Path
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path} is {self.kind} ({self.detail})"


def image_problem(path: str | Path, decode: bool = False) -> ImageProblem | None:
    """What is wrong with the image file at `path`, or None when it is a whole image."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            with Image.open(file) as image:
                image_format = image.format
                if decode:
                    image.load()
            file.seek(max(size - TAIL_BYTES, 0))
            tail = file.read()
    except FileNotFoundError:
        return ImageProblem(path, "missing", "no such file")
    except UnidentifiedImageError:
        return ImageProblem(path, "unreadable", "PIL cannot identify it as an image")
    except UNREADABLE_ERRORS as error:
        return ImageProblem(path, "truncated" if "truncated" in str(error) else "unreadable", str(error))
    marker = END_MARKERS.get(image_format or "")
    if marker is None or marker in tail:
        return None
    if image_format == "JPEG" and (decode or image_problem(path, decode=True) is None):  # it decodes: data after its end
        return None
    return ImageProblem(path, "truncated", f"a {image_format} file of {size:,} bytes without its end marker")


def find_image_problems(paths: Iterable[str | Path], decode: bool = False) -> list[ImageProblem]:
    """The problems of the image files `paths` (each distinct path checked once), in path order.

    Wrap `paths` in a progress bar (e.g. tqdm) to show progress; the function prints nothing.
    """
    seen: set[Path] = set()
    problems = []
    for path in map(Path, paths):  # consumed one at a time, so a progress bar around `paths` moves
        if path not in seen:
            seen.add(path)
            problem = image_problem(path, decode)
            if problem is not None:
                problems.append(problem)
    return problems


def describe_problems(problems: Sequence[ImageProblem], total: int, what: str) -> str:
    """One message naming the first bad file and how many more there are."""
    more = (
        f"; {len(problems) - 1:,} more of its {total:,} image files are bad too (`tirg data check` lists them)" if len(problems) > 1 else ""
    )
    return f"{what}: {problems[0]}{more}"


def check_image_files(paths: Sequence[str | Path], what: str) -> None:
    """Raise DataError naming the first missing, truncated or unreadable file of `paths` (header check).

    `what` says whose files they are (e.g. "fashion200k test at data/f200k"); call it before long
    work starts.
    """
    problems = find_image_problems(paths)
    if problems:
        raise DataError(describe_problems(problems, len(set(map(Path, paths))), what))


def read_rgb(path: str | Path, what: str) -> Image.Image:
    """The image at `path` as RGB; a DataError naming `what` and the file if it is missing or unreadable."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{what} is missing: {path}") from None
    except UNREADABLE_ERRORS as error:
        raise DataError(f"{what} is not a readable image: {path} ({error})") from None
