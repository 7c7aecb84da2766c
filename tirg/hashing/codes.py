"""Binary codes: sign quantisation, packing into uint64 words, and Hamming ranking by popcount.

A code of b bits is stored as ceil(b / 64) uint64 words (bit j of the code is bit j % 64
of word j // 64; unused high bits are 0), so the Hamming distance between two codes is
the popcount of their XOR summed over words.

Ranking rule: ascending Hamming distance, ties broken by database index ascending. The
result is therefore a deterministic function of the codes, and the top-k is a prefix of
the full ranking.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

WORD_BITS = 64
# Tile of the top-k scan: queries x database codes whose XOR, popcount and filter mask
# stay in the CPU cache (about 1 MB of uint64 words for 64-bit codes).
_QUERY_TILE = 64
_DB_TILE = 2048
# Queries ranked at once by the full ranking: bounds its [queries, N] distance block.
_FULL_RANK_ROWS = 256
_MERGE_EVERY = 8  # tiles scanned between merges of a query tile's candidates


def sign_codes(values: np.ndarray) -> np.ndarray:
    """Bits of sign(values): True where a value is > 0; an exact 0 counts as -1 (bit 0)."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be [n, bits], got shape {values.shape}")
    return values > 0


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Pack bool [n, b] into uint64 [n, ceil(b / 64)] (little-endian bit order within each word)."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2 or bits.shape[1] == 0:
        raise ValueError(f"bits must be [n, b] with b >= 1, got shape {bits.shape}")
    n, b = bits.shape
    n_words = -(-b // WORD_BITS)
    padded = np.zeros((n, n_words * WORD_BITS), dtype=bool)
    padded[:, :b] = bits
    as_bytes = np.packbits(padded, axis=1, bitorder="little")  # [n, 8 * n_words]
    # Bytes are little-endian within a word on every platform by construction of the view below.
    return np.ascontiguousarray(as_bytes).view("<u8").astype(np.uint64, copy=False)


def hamming_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances uint16 [Q, N] between packed codes (the whole matrix: use for small Q x N)."""
    queries, database = _check_pair(queries, database)
    distances = np.zeros((len(queries), len(database)), dtype=np.uint16)
    for word in range(queries.shape[1]):
        distances += np.bitwise_count(queries[:, word, None] ^ database[None, :, word])
    return distances


def available_cpus() -> int:
    """CPUs this process may run on: its affinity set where the OS has one (Linux), else os.cpu_count() (macOS, Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hamming_rank(
    queries: np.ndarray, database: np.ndarray, k: int | None = None, n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Database ids ranked by Hamming distance to each query (ties: lower index first).

    Args:
        queries: uint64 [Q, W] packed codes; database: uint64 [N, W].
        k: keep the first k of the ranking; None ranks the whole database (what mAP@all needs).
        n_threads: query chunks ranked in parallel (numpy releases the GIL in its loops);
            None uses the CPUs available to this process.

    Returns:
        (distances int32 [Q, k], ids int64 [Q, k]), best first.
    """
    queries, database = _check_pair(queries, database)
    n_db = len(database)
    if k is not None and not 1 <= k <= n_db:
        raise ValueError(f"k={k} must be between 1 and the database size {n_db}")
    width = n_db if k is None else k
    distances = np.empty((len(queries), width), dtype=np.int32)
    ids = np.empty((len(queries), width), dtype=np.int64)
    rank = _rank_all if k is None else _rank_top_k

    def run(start: int, stop: int) -> None:
        distances[start:stop], ids[start:stop] = rank(queries[start:stop], database, width)

    n_threads = n_threads or available_cpus()
    chunk = max(_QUERY_TILE, -(-len(queries) // (4 * n_threads)) // _QUERY_TILE * _QUERY_TILE)
    starts = range(0, len(queries), chunk)
    if n_threads == 1 or len(starts) == 1:
        for start in starts:
            run(start, start + chunk)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(lambda start: run(start, start + chunk), starts))
    return distances, ids


def _rank_all(queries: np.ndarray, database: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.empty((len(queries), width), dtype=np.int32)
    ids = np.empty((len(queries), width), dtype=np.int64)
    for start in range(0, len(queries), _FULL_RANK_ROWS):
        block = hamming_distances(queries[start : start + _FULL_RANK_ROWS], database)
        # A stable sort keeps equal distances in index order (and is a radix sort for small integers).
        order = np.argsort(block, axis=1, kind="stable")
        ids[start : start + len(block)] = order
        distances[start : start + len(block)] = np.take_along_axis(block, order, axis=1)
    return distances, ids


def _rank_top_k(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scan the database in tiles, keeping each query's best k as keys (distance << 40 | id).

    Once a query holds k codes, the worst of them bounds admission: a later code enters
    only when strictly closer, since at an equal distance its larger index loses the tie.
    So most tiles cost an XOR, a popcount and one compare per pair.
    """
    n_words = queries.shape[1]
    max_distance = WORD_BITS * n_words
    # The bound has the distances' own small dtype: comparing uint8 with int64 would upcast every pair.
    distance_dtype = np.uint8 if n_words == 1 else np.uint16
    distances = np.empty((len(queries), k), dtype=np.int32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    sentinel = np.int64((max_distance + 1) << 40)
    popcount = np.empty((_QUERY_TILE, _DB_TILE), dtype=np.uint8)
    xor = np.empty((_QUERY_TILE, _DB_TILE), dtype=np.uint64)
    for q_start in range(0, len(queries), _QUERY_TILE):
        block = queries[q_start : q_start + _QUERY_TILE]
        rows = len(block)
        best = np.full((rows, k), sentinel, dtype=np.int64)  # the best k so far, unordered
        bound = np.full((rows, 1), max_distance, dtype=distance_dtype)  # admit at or below (first k)
        admit = np.less_equal
        pending_rows: list[np.ndarray] = []
        pending_keys: list[np.ndarray] = []
        n_tiles_pending = 0
        for d_start in range(0, len(database), _DB_TILE):
            tile = database[d_start : d_start + _DB_TILE]
            if n_words == 1:
                count = popcount[:rows, : len(tile)]
                tile_distance = np.bitwise_count(np.bitwise_xor(block, tile[:, 0], out=xor[:rows, : len(tile)]), out=count)
            else:
                tile_distance = hamming_distances(block, tile)
            if d_start == 0 and len(tile) > k:
                # The first tile's k-th smallest distance is already a valid bound (k codes are within it).
                bound = np.partition(tile_distance, k - 1, axis=1)[:, k - 1 : k]
            # flatnonzero on the flat mask is several times faster than a 2-D nonzero.
            flat = np.flatnonzero(admit(tile_distance, bound))
            if len(flat) == 0:
                continue
            row, column = np.divmod(flat, len(tile))
            pending_rows.append(row)
            pending_keys.append((tile_distance.ravel()[flat].astype(np.int64) << 40) | (column + d_start))
            # Merging costs about as much as scanning a tile, so it waits for several tiles; the
            # bound is then a little looser meanwhile, which admits a few more codes.
            n_tiles_pending += 1
            if n_tiles_pending >= _MERGE_EVERY or admit is np.less_equal:
                best = _merge(best, np.concatenate(pending_rows), np.concatenate(pending_keys), k, sentinel)
                bound = (best.max(axis=1, keepdims=True) >> 40).astype(distance_dtype)
                admit = np.less
                pending_rows, pending_keys, n_tiles_pending = [], [], 0
        if pending_rows:
            best = _merge(best, np.concatenate(pending_rows), np.concatenate(pending_keys), k, sentinel)
        best.sort(axis=1)
        distances[q_start : q_start + rows] = best >> 40
        ids[q_start : q_start + rows] = best & ((1 << 40) - 1)
    return distances, ids


def _merge(best: np.ndarray, row: np.ndarray, keys: np.ndarray, k: int, sentinel: np.int64) -> np.ndarray:
    """The k smallest keys per row among `best` [rows, k] and the new (row, key) pairs."""
    order = np.argsort(row, kind="stable")
    row, keys = row[order], keys[order]
    counts = np.bincount(row, minlength=len(best))
    pool = np.full((len(best), k + int(counts.max())), sentinel, dtype=np.int64)
    pool[:, :k] = best
    slot = k + np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    pool[row, slot] = keys
    return np.partition(pool, k - 1, axis=1)[:, :k]


def _as_packed(name: str, codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint64:
        raise ValueError(f"{name} must be packed codes, uint64 [n, words] (see pack_codes), got {codes.dtype}{list(codes.shape)}")
    return np.ascontiguousarray(codes)


def _check_pair(queries: np.ndarray, database: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    queries, database = _as_packed("queries", queries), _as_packed("database", database)
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} words per code, the database {database.shape[1]}")
    if len(database) >= 1 << 40:
        raise ValueError(f"database of {len(database)} codes is too large (ids are packed into 40 bits)")
    return queries, database
