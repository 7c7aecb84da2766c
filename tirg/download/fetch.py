"""One file over HTTP(S): streamed GET, resumed with Range after a dropped connection, then verified.

urllib follows the proxy variables (http_proxy, https_proxy, no_proxy) and the default SSL context
reads SSL_CERT_FILE / SSL_CERT_DIR; only GET requests are sent.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from tirg.errors import TirgError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "tirg-data-download"
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(TirgError):
    """A file could not be fetched, verified or unpacked; the message names the URL or file."""


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def corrupt_path(path: Path) -> Path:
    return path.with_name(path.name + ".corrupt")


def fetch(
    url: str, path: Path, size: int | None = None, sha256: str | None = None, md5: str | None = None,
    retries: int = 3, timeout: float = 60.0, progress: bool = False,
) -> Path:  # fmt: skip
    """Download `url` to `path` through `<path>.part`, which survives a failure and is resumed next time.

    A dropped connection is resumed up to `retries` times in this call. The file is renamed to
    `path` only when its length matches what the server announced and `size`, `sha256` and `md5`
    (when given) match; on a mismatch it is moved to `<path>.corrupt` and nothing else happens.
    """
    part = partial_path(path)
    for attempt in range(retries + 1):
        try:
            _get(url, part, size, timeout, progress)
            break
        except (OSError, http.client.HTTPException) as error:  # reset, timeout, closed mid-file
            if isinstance(error, urllib.error.HTTPError):  # an answer, not a dropped connection: no retry
                raise _http_error(url, error, path) from None
            kept = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                resume = f"{kept:,} bytes are kept in {part} and the next run resumes from there" if kept else "nothing was received"
                raise DownloadError(
                    f"{url}: the transfer failed ({_reason(error)}); {resume}. Without access to this host, fetch the file "
                    f"by other means and put it at {path}: the next run verifies and uses it"
                ) from None
            logger.warning("%s: the transfer failed (%s) after %d bytes; trying again", url, _reason(error), kept)
    problem = mismatch(part, size, sha256, md5)
    if problem:
        corrupt = corrupt_path(path)
        os.replace(part, corrupt)
        raise DownloadError(
            f"{url}: {problem}; the file is kept as {corrupt} and nothing was unpacked. Run again to fetch it afresh; "
            "if it differs again, the published file has changed: report it to the tirg maintainers"
        )
    os.replace(part, path)
    return path


def mismatch(path: Path, size: int | None, sha256: str | None, md5: str | None) -> str | None:
    """What about `path` differs from the published size and checksums, or None."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"it has {actual:,} bytes, the publisher gives {size:,}"
    digests = {name: hashlib.new(name) for name, expected in (("sha256", sha256), ("md5", md5)) if expected}
    if not digests:
        return None
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for digest in digests.values():
                digest.update(chunk)
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if name in digests and digests[name].hexdigest() != expected.lower():
            return f"its {name.upper()} is {digests[name].hexdigest()}, the publisher gives {expected}"
    return None


def _get(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
        logger.info("%s: resuming at byte %d", url, have)
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the range starts at or past the end: the part is complete, or longer than the file
            total = _total(error.headers.get("Content-Range"))
            error.close()
            if total == have:
                return
            part.unlink()
            raise ConnectionError(f"the partial file is longer than the {total} bytes served; starting again") from None
        raise
    with response:
        total = _announced_total(response, have)
        if response.status != 206:
            have = 0  # the server ignored the Range request and sends the whole file
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url}: the server announces {total:,} bytes, the publisher gives {size:,}: has the file changed?")
        with open(part, "ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"), disable=not progress
        ) as bar:  # fmt: skip
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received != total:
        raise ConnectionError(f"the connection closed at byte {received:,} of {total:,}")


def _announced_total(response: http.client.HTTPResponse, have: int) -> int | None:
    """The whole file's length, from Content-Range (206) or Content-Length (200); None if unknown."""
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match[1]) != have:
            raise ConnectionError(f"the server answered the range request with Content-Range {response.headers.get('Content-Range')!r}")
        return None if match[3] == "*" else int(match[3])
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _total(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return int(match[1]) if match else None


def _http_error(url: str, error: urllib.error.HTTPError, path: Path) -> DownloadError:
    hint = " (the file may have moved: report it to the tirg maintainers)" if error.code in (403, 404, 410) else ""
    return DownloadError(
        f"{url}: HTTP {error.code} {error.reason}{hint}. A copy fetched elsewhere can be put at {path}: the next run verifies and uses it"
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
