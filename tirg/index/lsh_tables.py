"""The hash tables of random-hyperplane LSH (tirg.index.lsh): keys, buckets, probe masks.

A vector's key in a table is its sign pattern against the table's hyperplanes, packed into
a uint64. A table stores the gallery ids sorted by key, with the distinct keys and CSR
offsets into that order, so a bucket lookup is a binary search (np.searchsorted).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

MAX_BITS = 64  # keys are packed into one uint64
_HASH_BLOCK_ROWS = 65536  # rows hashed at once: bounds the [rows, tables*bits] projection buffer


@dataclass(frozen=True)
class LSHTable:
    """One hash table: gallery ids sorted by key, distinct keys, and CSR offsets into the ids."""

    keys: np.ndarray  # uint64 [B] distinct keys, ascending
    offsets: np.ndarray  # int64 [B + 1]; bucket b holds ids[offsets[b]:offsets[b + 1]]
    ids: np.ndarray  # int32 or int64 [N] gallery ids in key order

    def bucket_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class BucketStats:
    """Occupancy of the tables: non-empty buckets and the bucket-size distribution over all tables."""

    nonempty_buckets: tuple[int, ...]  # per table
    possible_buckets: int  # 2 ** n_bits
    size_min: int
    size_median: float
    size_mean: float
    size_p99: float
    size_max: int


def probe_masks(n_bits: int, radius: int) -> np.ndarray:
    """XOR masks of popcount 0..radius over n_bits bits, ordered by popcount (nearest buckets first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << bit for bit in bits) for bits in itertools.combinations(range(n_bits), r))
    return np.array(masks, dtype=np.uint64)


def hash_keys(features: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Sign patterns of features against each table's planes, packed into uint64 keys [n, n_tables]."""
    n_tables, n_bits, dim = planes.shape
    flat_planes = planes.reshape(n_tables * n_bits, dim)
    weights = np.left_shift(np.uint64(1), np.arange(n_bits, dtype=np.uint64))
    keys = np.empty((len(features), n_tables), dtype=np.uint64)
    for start in range(0, len(features), _HASH_BLOCK_ROWS):
        block = np.ascontiguousarray(features[start : start + _HASH_BLOCK_ROWS])
        bits = (block @ flat_planes.T > 0).reshape(len(block), n_tables, n_bits)
        keys[start : start + len(block)] = (bits * weights).sum(axis=2, dtype=np.uint64)
    return keys


def build_table(keys: np.ndarray, id_dtype: type) -> LSHTable:
    """The table of one column of keys: ids sorted by key (stable, so equal keys keep id order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    offsets = np.concatenate([starts, [len(keys)]]).astype(np.int64)
    return LSHTable(keys=sorted_keys[starts], offsets=offsets, ids=order.astype(id_dtype))
