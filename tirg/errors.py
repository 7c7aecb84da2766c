"""Exceptions raised where bad input is first seen; each message names the file or argument."""

from __future__ import annotations


class TirgError(Exception):
    """Base class for the package's errors."""


class DataError(TirgError, ValueError):
    """A data set on disk is missing, malformed or inconsistent."""


class CheckpointError(TirgError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the model or vocabulary asked for."""


class CacheError(TirgError, ValueError):
    """A feature cache is missing, stale, or does not match what the caller asked for."""


class ConfigError(TirgError, ValueError):
    """A setting has the wrong type or a value out of range; the message names its flag."""


class OutputError(TirgError):
    """An output destination is refused: it holds something this tool did not write, is locked, or is unwritable."""
