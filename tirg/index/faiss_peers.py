"""FAISS indexes as peers in the comparison: IndexFlatIP (exact), IndexLSH, IndexIVFFlat.

faiss-cpu is an optional dependency (`pip install "tirg[faiss]"`); it is imported only
when a peer is built, and a missing install raises ImportError saying how to get it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tirg.index.checks import as_exclude, as_features, check_k


def import_faiss() -> ModuleType:
    """Import faiss, or raise ImportError naming the optional extra that provides it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "the FAISS peers need faiss-cpu, which is not installed; "
            'install it with `pip install "tirg[faiss]"` (or `pip install faiss-cpu`)'
        ) from error
    return faiss


class FaissSearcher:
    """A built FAISS index over a gallery, searched with TIRG's per-query exclusion."""

    def __init__(self, name: str, index: Any, gallery_size: int, dim: int, *, n_probe: int | None = None) -> None:
        self.name = name
        self.index = index
        self.gallery_size = gallery_size
        self.dim = dim
        self.n_probe = n_probe  # IVF only: searchers with different n_probe share one index

    def search(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [Q, k], ids int64 [Q, k]) best first; -1 where the index found fewer than k.

        FAISS has no per-query exclusion, so it is asked for k + 1 and the excluded id
        (or, when absent, the last result) is dropped from each row.
        """
        queries = np.ascontiguousarray(as_features("queries", queries, dim=self.dim))
        exclude = as_exclude(exclude, len(queries), self.gallery_size)
        check_k(k, self.gallery_size, exclude)
        if self.n_probe is not None:
            self.index.nprobe = self.n_probe
        if exclude is None:
            scores, ids = self.index.search(queries, k)
            return scores, ids
        scores, ids = self.index.search(queries, k + 1)
        drop = (ids == exclude[:, None]) & (exclude[:, None] >= 0)
        drop[~drop.any(axis=1), -1] = True
        keep = ~drop
        return scores[keep].reshape(len(queries), k), ids[keep].reshape(len(queries), k)

    def n_compared(self, queries: np.ndarray) -> np.ndarray:
        """Gallery items each query is compared with: all of them, or for IVF the items in the probed lists."""
        if self.n_probe is None:
            return np.full(len(queries), self.gallery_size, dtype=np.int64)
        _, lists = self.index.quantizer.search(np.ascontiguousarray(queries, dtype=np.float32), self.n_probe)
        sizes = np.array([self.index.invlists.list_size(i) for i in range(self.index.nlist)], dtype=np.int64)
        return np.where(lists >= 0, sizes[lists.clip(min=0)], 0).sum(axis=1)


def faiss_flat_ip(gallery: np.ndarray) -> FaissSearcher:
    """Exhaustive inner-product search (the industrial exact baseline)."""
    faiss = import_faiss()
    gallery = np.ascontiguousarray(as_features("gallery", gallery))
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    return FaissSearcher("faiss-flat", index, len(gallery), gallery.shape[1])


def faiss_lsh(gallery: np.ndarray, n_bits: int) -> FaissSearcher:
    """FAISS's IndexLSH: random rotation, sign bits, exhaustive Hamming ranking (no exact re-rank).

    Its rotation is drawn from FAISS's own fixed seed, not from ours.
    """
    if n_bits < 1:
        raise ValueError(f"n_bits={n_bits} must be >= 1")
    faiss = import_faiss()
    gallery = np.ascontiguousarray(as_features("gallery", gallery))
    index = faiss.IndexLSH(gallery.shape[1], n_bits, True, False)
    index.train(gallery)
    index.add(gallery)
    return FaissSearcher(f"faiss-lsh bits={n_bits}", index, len(gallery), gallery.shape[1])


def default_ivf_lists(n_gallery: int) -> int:
    """FAISS's rule of thumb, about 4 sqrt(N) inverted lists, kept to at least 39 points per list for training."""
    return max(1, min(int(4 * math.sqrt(n_gallery)), n_gallery // 39))


def faiss_ivf_flat(gallery: np.ndarray, n_lists: int, n_probes: Sequence[int], *, seed: int) -> list[FaissSearcher]:
    """Inverted file over k-means cells (inner-product metric), trained once with a seeded k-means.

    Returns one searcher per entry of n_probes (cells scanned exactly per query); they share the index.
    """
    if not 1 <= n_lists <= len(gallery):
        raise ValueError(f"n_lists={n_lists} must be between 1 and the gallery rows {len(gallery)}")
    bad = [p for p in n_probes if not 1 <= p <= n_lists]
    if bad or not n_probes:
        raise ValueError(f"n_probes {list(n_probes)} must be non-empty, each between 1 and n_lists={n_lists}")
    faiss = import_faiss()
    gallery = np.ascontiguousarray(as_features("gallery", gallery))
    quantizer = faiss.IndexFlatIP(gallery.shape[1])
    index = faiss.IndexIVFFlat(quantizer, gallery.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(gallery)
    index.add(gallery)
    return [FaissSearcher(f"faiss-ivf lists={n_lists} probe={p}", index, len(gallery), gallery.shape[1], n_probe=p) for p in n_probes]
