"""Input checks shared by the search functions; each error names the argument and what was expected."""

from __future__ import annotations

import numpy as np

# Rows checked for NaN/inf at once: bounds the temporary boolean array on large (memory-mapped) inputs.
_FINITE_CHECK_ROWS = 16384


def as_features(name: str, array: np.ndarray, *, dim: int | None = None) -> np.ndarray:
    """Return `array` as a 2-D float32 matrix without copying when it already is one.

    A float32 memory map stays a memory map. Raises ValueError naming `name` when the
    array is not 2-D, is empty, has the wrong width, or holds NaN or inf.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [rows, dim] feature matrix, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} has width {array.shape[1]}, expected {dim} (the gallery's feature width)")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.dtype != np.float32:
        array = array.astype(np.float32)
    for start in range(0, array.shape[0], _FINITE_CHECK_ROWS):
        block = array[start : start + _FINITE_CHECK_ROWS]
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise ValueError(f"{name} row {row} holds NaN or inf; features must be finite")
    return array


def as_exclude(exclude: np.ndarray | None, n_queries: int, n_gallery: int) -> np.ndarray | None:
    """Validate per-query excluded gallery ids (-1 = none) and return them as int64."""
    if exclude is None:
        return None
    exclude = np.asarray(exclude)
    if exclude.shape != (n_queries,) or not np.issubdtype(exclude.dtype, np.integer):
        raise ValueError(
            f"exclude must be an integer array of shape ({n_queries},), one gallery id per query, got {exclude.dtype} {exclude.shape}"
        )
    exclude = exclude.astype(np.int64, copy=False)
    bad = (exclude < -1) | (exclude >= n_gallery)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"exclude[{i}]={exclude[i]} is not -1 or a gallery id in [0, {n_gallery})")
    return exclude


def check_k(k: int, n_gallery: int, exclude: np.ndarray | None) -> None:
    """k must leave enough gallery items once each query's excluded item is removed."""
    n_excluded = 0 if exclude is None else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= n_gallery - n_excluded:
        raise ValueError(
            f"k={k} must be between 1 and the gallery size {n_gallery}" + (" minus the 1 excluded item per query" if n_excluded else "")
        )
