"""Getting the real data sets and TIRG's released models: `tirg data download`."""

from tirg.download.archive import UnsafeArchiveError, unpack
from tirg.download.fetch import DownloadError, fetch
from tirg.download.install import DownloadResult, check, download, list_sources, status
from tirg.download.sources import SOURCES, Part, Source

__all__ = [
    "SOURCES",
    "DownloadError",
    "DownloadResult",
    "Part",
    "Source",
    "UnsafeArchiveError",
    "check",
    "download",
    "fetch",
    "list_sources",
    "status",
    "unpack",
]
