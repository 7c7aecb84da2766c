"""Exact inner-product search in blocks of queries, with top-k selection (no full sort)."""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_BLOCK_SIZE = 1024


def exact_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows by inner product for every query row.

    Args:
        queries: float32 array [Q, d].
        gallery: float32 array [N, d] (may be a memory map).
        k: number of neighbours, 1 <= k <= N (k <= N-1 when `exclude` is given).
        exclude: optional int array [Q]; gallery id that query i must never return
            (TIRG's protocol removes the query's own source image). -1 excludes nothing.
        block_size: queries scored at once; peak memory is block_size x N floats.

    Returns:
        (scores float32 [Q, k], ids int64 [Q, k]), best first for each query.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gallery_t = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32))
    if queries.ndim != 2 or gallery_t.ndim != 2 or queries.shape[1] != gallery_t.shape[1]:
        raise ValueError(
            f"queries {queries.shape} and gallery {tuple(gallery_t.shape)} must be 2-D with the same width"
        )
    n_gallery = gallery_t.shape[0]
    n_excluded = 0 if exclude is None else 1
    if not 1 <= k <= n_gallery - n_excluded:
        raise ValueError(f"k={k} must be between 1 and the gallery size {n_gallery} minus {n_excluded} excluded")
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(queries)} queries")

    all_scores = np.empty((len(queries), k), dtype=np.float32)
    all_ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block_size):
        stop = min(start + block_size, len(queries))
        sims = torch.from_numpy(queries[start:stop]) @ gallery_t.T
        if exclude is not None:
            rows = torch.arange(stop - start)
            cols = torch.as_tensor(np.asarray(exclude[start:stop], dtype=np.int64))
            keep = cols >= 0
            sims[rows[keep], cols[keep]] = -torch.inf
        scores, ids = torch.topk(sims, k, dim=1, largest=True, sorted=True)
        all_scores[start:stop] = scores.numpy()
        all_ids[start:stop] = ids.numpy()
    return all_scores, all_ids
