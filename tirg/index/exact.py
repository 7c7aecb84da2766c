"""Exact inner-product search in tiles of queries x gallery, with top-k selection (no full sort).

The similarity tile is computed with numpy's BLAS (multi-threaded; on the AMD CPUs
this project measures on, OpenBLAS is markedly faster than torch's MKL for this
product), and the top-k of each tile is selected with torch.topk (multi-threaded
partial selection) in a helper thread while BLAS computes the next tile: run one
after the other, the selection also waits for BLAS's idle threads to stop spinning.
Peak memory is two tiles, query_block x gallery_block floats each, whatever the
number of queries or gallery rows.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from tirg.index.checks import as_exclude, as_features, check_k

DEFAULT_BLOCK_SIZE = 1024
DEFAULT_GALLERY_BLOCK_SIZE = 65536


def exact_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    gallery_block_size: int = DEFAULT_GALLERY_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows by inner product for every query row.

    Args:
        queries: float32 array [Q, d].
        gallery: float32 array [N, d] (may be a memory map; it is read one block at a time).
        k: number of neighbours, 1 <= k <= N (k <= N-1 when `exclude` is given).
        exclude: optional int array [Q]; gallery id that query i must never return
            (TIRG's protocol removes the query's own source image). -1 excludes nothing.
        block_size: queries scored at once.
        gallery_block_size: gallery rows scored at once; the tile is block_size x gallery_block_size.

    Returns:
        (scores float32 [Q, k], ids int64 [Q, k]), best first for each query.
    """
    gallery = as_features("gallery", gallery)
    queries = as_features("queries", queries, dim=gallery.shape[1])
    n_queries, n_gallery = len(queries), len(gallery)
    exclude = as_exclude(exclude, n_queries, n_gallery)
    check_k(k, n_gallery, exclude)
    if block_size < 1 or gallery_block_size < 1:
        raise ValueError(f"block_size={block_size} and gallery_block_size={gallery_block_size} must be >= 1")

    best = _RunningTopK(n_queries, k)
    _select_in_tiles(queries, gallery, k, exclude, block_size, gallery_block_size, best)
    return best.scores.numpy(), best.ids.numpy()


class _RunningTopK:
    """The best k scores and gallery ids of every query over the gallery blocks merged so far."""

    def __init__(self, n_queries: int, k: int):
        self.k = k
        self.scores = torch.full((n_queries, k), -torch.inf)
        self.ids = torch.full((n_queries, k), -1, dtype=torch.int64)

    def merge(self, selected: Future, q_start: int, q_stop: int, g_start: int) -> None:
        """Merge one tile's top-k (a pending torch.topk of queries q_start:q_stop against the block at g_start)."""
        tile_scores, tile_ids = selected.result()
        tile_ids += g_start
        if g_start == 0:
            self.scores[q_start:q_stop, : tile_scores.shape[1]] = tile_scores
            self.ids[q_start:q_stop, : tile_ids.shape[1]] = tile_ids
        else:
            merged_scores = torch.cat([self.scores[q_start:q_stop], tile_scores], dim=1)
            merged_ids = torch.cat([self.ids[q_start:q_stop], tile_ids], dim=1)
            self.scores[q_start:q_stop], order = torch.topk(merged_scores, self.k, dim=1)
            self.ids[q_start:q_stop] = torch.gather(merged_ids, 1, order)


def _select_in_tiles(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None,
    block_size: int,
    gallery_block_size: int,
    best: _RunningTopK,
) -> None:
    """Score every tile with BLAS while a helper thread selects the previous tile's top-k into `best`."""
    n_queries, n_gallery = len(queries), len(gallery)
    # Two flat buffers used in turn: BLAS fills one while the other's top-k is selected. Reusing
    # them saves the page faults of a fresh multi-megabyte allocation per tile.
    tile_size = min(block_size, n_queries) * min(gallery_block_size, n_gallery)
    buffers = [np.empty(tile_size, dtype=np.float32) for _ in range(2)]
    pending: deque[tuple[Future, int, int, int]] = deque()
    with ThreadPoolExecutor(max_workers=1) as selector:
        # Gallery blocks outside, query blocks inside: each gallery block is read once from a memory map.
        for g_start in range(0, n_gallery, gallery_block_size):
            g_block = np.ascontiguousarray(gallery[g_start : g_start + gallery_block_size])
            for q_start in range(0, n_queries, block_size):
                q_stop = min(q_start + block_size, n_queries)
                if len(pending) == 2:  # the oldest selection must finish before its buffer is overwritten
                    best.merge(*pending.popleft())
                buffer = buffers[0]
                buffers.reverse()
                tile = buffer[: (q_stop - q_start) * len(g_block)].reshape(q_stop - q_start, len(g_block))
                np.matmul(queries[q_start:q_stop], g_block.T, out=tile)
                if exclude is not None:
                    _mask_excluded(tile, exclude[q_start:q_stop] - g_start)
                selected = selector.submit(torch.topk, torch.from_numpy(tile), min(k, len(g_block)), 1)
                pending.append((selected, q_start, q_stop, g_start))
        while pending:
            best.merge(*pending.popleft())


def _mask_excluded(tile: np.ndarray, local_exclude: np.ndarray) -> None:
    """Set tile[i, local_exclude[i]] to -inf where that column lies inside this tile."""
    rows = np.flatnonzero((local_exclude >= 0) & (local_exclude < tile.shape[1]))
    tile[rows, local_exclude[rows]] = -np.inf
