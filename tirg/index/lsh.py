"""Random-hyperplane (sign random projection) LSH with multi-probe and exact re-ranking.

Each of `n_tables` tables draws its own `n_bits` Gaussian hyperplanes from one seeded
generator; the tables and their keys are tirg.index.lsh_tables.

A query visits, in every table, its own bucket and (multi-probe) the buckets whose
key differs in at most `probe_radius` bits, nearest first. The union of those
buckets is its candidate set; candidates are re-ranked by the exact inner product
with the original features. Nothing loops in Python per gallery vector or per query:
queries are processed in blocks, and a block is scored against the union of its
members' candidates with one matrix product, masked so each query sees only its own.

Two protocols decide what happens when the candidates are fewer than k:
- "project" (default): the query falls back to exact search, so every query gets a
  full top-k of true neighbours.
- "original": the course project's notebook (hmtrii/tirg, `compute_similary_by_hasing`).
  Only a query whose buckets are all EMPTY falls back to exact search; any other query
  returns its candidates ranked by inner product and then the rest of the gallery,
  which the notebook scored -1e11 each and left to argsort's unspecified tie order;
  here they follow in ascending gallery id (a stated rule, so results are reproducible).
  No probing (probe_radius must be 0). Unlike the notebook, the excluded source image
  is the query's own: its masking indexed the gallery with the last candidate's id
  (a loop variable overwritten by the inner loop), which is not reproduced.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from tirg.index.checks import as_exclude, as_features, check_k
from tirg.index.exact import exact_search
from tirg.index.lsh_tables import MAX_BITS, BucketStats, LSHTable, build_table, hash_keys, probe_masks

logger = logging.getLogger(__name__)

PROTOCOLS = ("project", "original")
MAX_PROBES = 100_000  # probe masks per table; beyond this multi-probe is slower than exact search
_PROBE_CHUNK_QUERIES = 1024  # queries probed per call: bounds the (query, id) pair arrays


@dataclass(frozen=True)
class LSHConfig:
    """Settings of a random-hyperplane LSH index.

    n_bits: hyperplanes per table (key length), 1..64. The original used 12.
    n_tables: independent tables, each with its own planes. The original used 1.
    probe_radius: also visit buckets within this Hamming distance of the query's key.
    seed: seeds the hyperplanes of all tables (one generator, so tables differ).
    query_block: queries scored together against the union of their candidates
        (queries are sorted by first-table key first, so a block's members tend to share buckets).
    protocol: "project" (fewer than k candidates: exact search) or "original" (the course
        project's notebook: exact search only for an empty bucket; see the module docstring).
    """

    n_bits: int = 12
    n_tables: int = 1
    probe_radius: int = 0
    seed: int = 0
    query_block: int = 64
    protocol: str = "project"

    def __post_init__(self) -> None:
        if not 1 <= self.n_bits <= MAX_BITS:
            raise ValueError(f"n_bits={self.n_bits} must be between 1 and {MAX_BITS} (keys are uint64)")
        if self.n_tables < 1:
            raise ValueError(f"n_tables={self.n_tables} must be >= 1")
        if not 0 <= self.probe_radius <= self.n_bits:
            raise ValueError(f"probe_radius={self.probe_radius} must be between 0 and n_bits={self.n_bits}")
        n_probes = sum(math.comb(self.n_bits, r) for r in range(self.probe_radius + 1))
        if n_probes > MAX_PROBES:
            raise ValueError(
                f"probe_radius={self.probe_radius} with n_bits={self.n_bits} visits {n_probes} buckets per table; "
                f"at most {MAX_PROBES} are allowed"
            )
        if self.query_block < 1:
            raise ValueError(f"query_block={self.query_block} must be >= 1")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r} must be one of {PROTOCOLS}")
        if self.protocol == "original" and self.probe_radius != 0:
            raise ValueError(f"protocol='original' looks up one exact bucket per table; probe_radius={self.probe_radius} must be 0")

    @property
    def label(self) -> str:
        setting = f"lsh b={self.n_bits} L={self.n_tables} r={self.probe_radius}"
        return f"{setting} (original protocol)" if self.protocol == "original" else setting


@dataclass(frozen=True)
class LSHResult:
    """Search output: top-k (best first) plus how much work each query needed."""

    scores: np.ndarray  # float32 [Q, k]
    ids: np.ndarray  # int64 [Q, k]
    n_candidates: np.ndarray  # int64 [Q] distinct candidates re-ranked (excluded id not counted)
    # bool [Q] True where the query used exact search: fewer than k candidates ("project")
    # or an empty bucket in every table ("original")
    fallback: np.ndarray


@dataclass
class _Scratch:
    """Buffers reused across the query blocks of one search call."""

    in_union: np.ndarray  # bool [N], all False between blocks
    position: np.ndarray  # int64 [N], column of a gallery id in the current block's union
    rows: torch.Tensor  # float32 [>= union size, d], gathered gallery rows; grown when a union is larger


class LSHIndex:
    """Random-hyperplane LSH over a gallery; see the module docstring. Build with `LSHIndex.build`."""

    def __init__(self, config: LSHConfig, planes: np.ndarray, tables: list[LSHTable], gallery: np.ndarray) -> None:
        self.config = config
        self.planes = planes  # float32 [n_tables, n_bits, d]
        self.tables = tables
        self.gallery = gallery
        self._masks = probe_masks(config.n_bits, config.probe_radius)
        with warnings.catch_warnings():
            # A read-only memory map gives a read-only tensor; it is only ever read (index_select).
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self._gallery_t = torch.from_numpy(gallery)

    @classmethod
    def build(cls, gallery: np.ndarray, config: LSHConfig) -> LSHIndex:
        """Hash every gallery row into every table. The index keeps a reference to `gallery` for re-ranking."""
        gallery = as_features("gallery", gallery)
        rng = np.random.default_rng(config.seed)
        planes = rng.standard_normal((config.n_tables, config.n_bits, gallery.shape[1]), dtype=np.float32)
        return cls.from_planes(gallery, planes, config)

    @classmethod
    def from_planes(cls, gallery: np.ndarray, planes: np.ndarray, config: LSHConfig) -> LSHIndex:
        """An index over given hyperplanes float32 [n_tables, n_bits, d], e.g. learned ones; config.seed is unused."""
        gallery = as_features("gallery", gallery)
        planes = np.ascontiguousarray(planes, dtype=np.float32)
        if planes.shape != (config.n_tables, config.n_bits, gallery.shape[1]):
            raise ValueError(f"planes {planes.shape} must be [n_tables={config.n_tables}, n_bits={config.n_bits}, d={gallery.shape[1]}]")
        keys = hash_keys(gallery, planes)
        id_dtype = np.int32 if len(gallery) < 2**31 else np.int64
        tables = [build_table(keys[:, t], id_dtype) for t in range(config.n_tables)]
        index = cls(config, planes, tables, gallery)
        logger.info("built %s over %d rows: %s", config.label, len(gallery), index.bucket_stats())
        return index

    def hash(self, features: np.ndarray) -> np.ndarray:
        """Keys of `features` in every table: uint64 [n, n_tables]."""
        features = as_features("features", features, dim=self.planes.shape[2])
        return hash_keys(features, self.planes)

    def bucket_stats(self) -> BucketStats:
        sizes = np.concatenate([table.bucket_sizes() for table in self.tables])
        return BucketStats(
            nonempty_buckets=tuple(len(table.keys) for table in self.tables),
            possible_buckets=2**self.config.n_bits,
            size_min=int(sizes.min()),
            size_median=float(np.median(sizes)),
            size_mean=float(sizes.mean()),
            size_p99=float(np.percentile(sizes, 99)),
            size_max=int(sizes.max()),
        )

    def search(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> LSHResult:
        """Top-k by exact inner product among each query's candidates; what follows them is the protocol's.

        "project": exact search for a query with fewer than k candidates. "original": exact search
        only for a query whose buckets are all empty; a query with 1..k-1 candidates gets them
        first, then the other gallery ids in ascending order (scores -inf: not compared).
        """
        queries = as_features("queries", queries, dim=self.planes.shape[2])
        n_queries, n_gallery = len(queries), len(self.gallery)
        exclude = as_exclude(exclude, n_queries, n_gallery)
        check_k(k, n_gallery, exclude)

        keys = hash_keys(queries, self.planes)
        # Sorted by first-table key, consecutive queries tend to share buckets, which keeps a block's union smaller.
        order = np.argsort(keys[:, 0], kind="stable")
        scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        ids = np.full((n_queries, k), -1, dtype=np.int64)
        n_candidates = np.zeros(n_queries, dtype=np.int64)
        scratch = _Scratch(
            in_union=np.zeros(n_gallery, dtype=bool),
            position=np.empty(n_gallery, dtype=np.int64),
            rows=torch.empty((0, self.gallery.shape[1])),
        )
        block = self.config.query_block
        # Probing many queries per call amortises the per-table Python work; blocks then slice the pairs.
        chunk = block * max(1, _PROBE_CHUNK_QUERIES // block)
        for chunk_start in range(0, n_queries, chunk):
            rows = order[chunk_start : chunk_start + chunk]
            query_of, gallery_id = self._probe(keys[rows])
            # numpy radix-sorts int16 with kind="stable" (linear time); query numbers fit unless blocks are huge.
            by_query = np.argsort(query_of.astype(np.int16 if len(rows) < 2**15 else np.int64), kind="stable")
            query_of, gallery_id = query_of[by_query], gallery_id[by_query]
            bounds = np.searchsorted(query_of, np.arange(0, len(rows) + block, block).clip(max=len(rows)))
            for b, start in enumerate(range(0, len(rows), block)):
                members = rows[start : start + block]
                pairs = slice(bounds[b], bounds[b + 1])
                block_scores, block_ids, n_candidates[members] = self._score_block(
                    queries[members],
                    query_of[pairs] - start,
                    gallery_id[pairs],
                    k,
                    None if exclude is None else exclude[members],
                    scratch,
                )
                scores[members], ids[members] = block_scores, block_ids

        if self.config.protocol == "original":
            fallback = ~self._any_bucket(keys)
            _fill_in_id_order(ids, n_candidates, ~fallback, exclude, n_gallery)
        else:
            fallback = n_candidates < k
        if fallback.any():
            fb_exclude = None if exclude is None else exclude[fallback]
            scores[fallback], ids[fallback] = exact_search(queries[fallback], self.gallery, k, exclude=fb_exclude)
        return LSHResult(scores=scores, ids=ids, n_candidates=n_candidates, fallback=fallback)

    def _any_bucket(self, keys: np.ndarray) -> np.ndarray:
        """bool [n]: the key of some table names a non-empty bucket (the excluded source may be its only item)."""
        found = np.zeros(len(keys), dtype=bool)
        for t, table in enumerate(self.tables):
            slot = np.searchsorted(table.keys, keys[:, t]).clip(max=len(table.keys) - 1)
            found |= table.keys[slot] == keys[:, t]
        return found

    def _probe(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (query row, gallery id) pairs in the probed buckets of all tables; a pair may repeat."""
        query_parts, id_parts = [], []
        for t, table in enumerate(self.tables):
            probes = keys[:, t, None] ^ self._masks[None, :]  # [n, n_probes]
            slot = np.searchsorted(table.keys, probes).clip(max=len(table.keys) - 1)
            found = table.keys[slot] == probes
            query_of = np.broadcast_to(np.arange(len(keys))[:, None], probes.shape)[found]
            starts = table.offsets[slot[found]]
            lengths = table.offsets[slot[found] + 1] - starts
            # Expand each [start, start + length) range without a Python loop.
            position = np.arange(lengths.sum()) + np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            query_parts.append(np.repeat(query_of, lengths))
            id_parts.append(table.ids[position])
        return np.concatenate(query_parts), np.concatenate(id_parts).astype(np.int64)

    def _score_block(
        self,
        queries: np.ndarray,
        query_of: np.ndarray,
        gallery_id: np.ndarray,
        k: int,
        exclude: np.ndarray | None,
        scratch: _Scratch,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score a block of queries against the union of their candidates; each query sees only its own.

        (query_of, gallery_id) are the block's probe pairs, query_of counting from 0 within the block.
        """
        scratch.in_union[gallery_id] = True
        union = np.flatnonzero(scratch.in_union)
        scratch.in_union[union] = False
        position = scratch.position
        position[union] = np.arange(len(union))
        member = np.zeros((len(queries), len(union)), dtype=bool)
        member[query_of, position[gallery_id]] = True
        if exclude is not None and len(union) > 0:
            slot = np.searchsorted(union, exclude).clip(max=len(union) - 1)
            rows = np.flatnonzero(union[slot] == exclude)
            member[rows, slot[rows]] = False
        n_candidates = member.sum(axis=1)

        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        width = int(n_candidates.max())
        if width == 0:
            return scores, ids, n_candidates
        if len(scratch.rows) < len(union):
            scratch.rows = torch.empty((len(union), self.gallery.shape[1]))
        # torch's gather is multi-threaded (numpy's is not), and rows x queries suits BLAS better than the transpose.
        rows = torch.index_select(self._gallery_t, 0, torch.from_numpy(union), out=scratch.rows[: len(union)])
        sims = rows.numpy() @ queries.T  # [union, block]
        # Each query's own candidates, left-aligned and padded with -inf, so top-k runs over a
        # row of its candidates rather than over the whole union.
        query_row, column = np.nonzero(member)  # grouped by query
        slot = np.arange(len(column)) - np.repeat(np.cumsum(n_candidates) - n_candidates, n_candidates)
        own_scores = np.full((len(queries), width), -np.inf, dtype=np.float32)
        own_scores[query_row, slot] = sims[column, query_row]
        own_columns = np.zeros((len(queries), width), dtype=np.int64)
        own_columns[query_row, slot] = column
        top_scores, top = _top_k(own_scores, min(k, width))
        scores[:, : top.shape[1]] = top_scores
        ids[:, : top.shape[1]] = union[np.take_along_axis(own_columns, top, axis=1)]
        ids[np.arange(k)[None, :] >= n_candidates[:, None]] = -1  # padding, not a candidate
        return scores, ids, n_candidates


def _fill_in_id_order(ids: np.ndarray, n_candidates: np.ndarray, rows: np.ndarray, exclude: np.ndarray | None, n_gallery: int) -> None:
    """Fill the slots after each selected row's candidates with the lowest gallery ids that are
    neither candidates nor excluded, in ascending order (the original protocol's tail), in place."""
    k = ids.shape[1]
    rows = np.flatnonzero(rows & (n_candidates < k))
    if len(rows) == 0:
        return
    # A row holds fewer than k candidates and at most one excluded id, so the first 2k + 1 ids
    # (or the whole gallery, since k <= N - 1 with an exclusion) hold the k free ones it needs.
    span = min(2 * k + 1, n_gallery)
    taken = np.zeros((len(rows), span), dtype=bool)
    row_ids = ids[rows]
    r, c = np.nonzero((row_ids >= 0) & (row_ids < span))
    taken[r, row_ids[r, c]] = True
    if exclude is not None:
        hit = (exclude[rows] >= 0) & (exclude[rows] < span)
        taken[np.flatnonzero(hit), exclude[rows][hit]] = True
    free = np.argsort(taken, axis=1, kind="stable")[:, :k]  # free ids first, ascending
    slot = np.arange(k)[None, :] - n_candidates[rows, None]  # position in the tail
    tail = slot >= 0
    row_ids[tail] = free[np.nonzero(tail)[0], slot[tail]]
    ids[rows] = row_ids


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row, best first: partition, then sort only the k kept.

    numpy, single-threaded, on purpose: these rows are short, and torch.topk's thread
    start-up costs ten times the work on a busy 2-core machine.
    """
    kept = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.indices(scores.shape)[1]
    kept_scores = np.take_along_axis(scores, kept, axis=1)
    order = np.argsort(-kept_scores, axis=1, kind="stable")
    return np.take_along_axis(kept_scores, order, axis=1), np.take_along_axis(kept, order, axis=1)
