"""Search methods as the comparison runs them: exact search, LSH, learned hyperplanes, FAISS peers, an opened index.

A method is built on the gallery with a seed and returns a searcher: `search(queries, k, exclude)`
gives the ranked ids and how many gallery items each query was compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from tirg.compare.config import CompareConfig
from tirg.index.exact import exact_search
from tirg.index.lsh import LSHConfig, LSHIndex

if TYPE_CHECKING:
    from tirg.index.opened import OpenedIndex


@dataclass(frozen=True)
class SearchOutput:
    """What a method returns for one sample: ranked ids and how many gallery items each query was compared with."""

    ids: np.ndarray  # int64 [Q, k], -1 for an empty slot
    n_compared: np.ndarray | None  # int64 [Q]; None: the searcher's count(queries) says, outside the timing


Searcher = Callable[[np.ndarray, int, "np.ndarray | None"], SearchOutput]


@dataclass(frozen=True)
class Method:
    """A named search method: `build(gallery, seed)` returns `search(queries, k, exclude) -> SearchOutput`.

    per_repeat: rebuilt for every sample with that sample's seed (randomised methods); others
    are built once (the seed is then the comparison's own) and reused.
    """

    name: str
    family: str  # exact | lsh | lsh-original | faiss-flat | faiss-lsh | faiss-ivf | learned-hash | lsh-equal-bits
    build: Callable[[np.ndarray, int], Searcher]
    per_repeat: bool = False


def methods_for(config: CompareConfig, n_gallery: int) -> list[Method]:
    """Exact search, every LSH setting in the config and (if asked) the FAISS peers."""
    methods = [Method("exact", "exact", build_exact)]
    methods += [Method(c.label, "lsh-original" if c.protocol == "original" else "lsh", lsh_builder(c), per_repeat=True) for c in config.lsh]
    if config.faiss:
        from tirg.index import faiss_peers

        faiss_peers.import_faiss()  # fail before any timing if faiss is missing
        methods.append(Method("faiss-flat", "faiss-flat", _faiss_builder(faiss_peers.faiss_flat_ip)))
        for bits in config.faiss_lsh_bits:
            builder = _faiss_builder(lambda g, b=bits: faiss_peers.faiss_lsh(g, b))
            methods.append(Method(f"faiss-lsh bits={bits}", "faiss-lsh", builder))
        n_lists = config.ivf_lists or faiss_peers.default_ivf_lists(n_gallery)
        probes = tuple(p for p in config.ivf_probes if p <= n_lists)
        methods += _ivf_methods(n_lists, probes, config.seed)
    return methods


def build_exact(gallery: np.ndarray, seed: int = 0) -> Searcher:
    """Exact search: every query is compared with the whole gallery."""

    def search(queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        _, ids = exact_search(queries, gallery, k, exclude=exclude)
        return SearchOutput(ids, np.full(len(queries), len(gallery), dtype=np.int64))

    return search


class LSHSearch:
    """LSHIndex as a comparison method; fallback queries count as comparing with the whole gallery."""

    def __init__(self, index: LSHIndex) -> None:
        self.index = index
        buckets = index.bucket_stats()
        self.stats = {
            "nonempty_buckets_mean": float(np.mean(buckets.nonempty_buckets)),  # over the tables
            "bucket_size_median": buckets.size_median,
            "bucket_size_max": float(buckets.size_max),
        }

    def __call__(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        result = self.index.search(queries, k, exclude=exclude)
        n_compared = np.where(result.fallback, len(self.index.gallery), result.n_candidates)
        return SearchOutput(result.ids, n_compared)


def lsh_builder(config: LSHConfig) -> Callable[[np.ndarray, int], LSHSearch]:
    """Random hyperplanes drawn from the seed the comparison passes (one per sample)."""
    return lambda gallery, seed: LSHSearch(LSHIndex.build(gallery, replace(config, seed=seed)))


def learned_vs_random_methods(planes: Sequence[np.ndarray], radii: Sequence[int], seed: int = 0) -> list[Method]:
    """Learned and random hyperplanes at equal bits, one table each, through the same LSH index.

    planes: float32 [bits, d] per learned code length (HashHead.planes). For each and each
    probe radius, a "learned" method and the random-hyperplane LSH of the same bits and radius.
    """
    methods = []
    for learned in planes:
        bits = learned.shape[0]
        for radius in radii:
            config = LSHConfig(n_bits=bits, n_tables=1, probe_radius=radius, seed=seed)
            build = lambda g, _, p=learned, c=config: LSHSearch(LSHIndex.from_planes(g, p[None], c))  # noqa: E731
            methods.append(Method(f"learned b={bits} r={radius}", "learned-hash", build))
            methods.append(Method(f"{config.label} (random)", "lsh-equal-bits", lsh_builder(config), per_repeat=True))
    return methods


class _FaissSearch:
    """A FAISS peer as a comparison method; count() (IVF's probed-list sizes) runs outside the timing."""

    def __init__(self, searcher: object) -> None:
        self.searcher = searcher

    def __call__(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        _, ids = self.searcher.search(queries, k, exclude=exclude)
        return SearchOutput(ids, None)

    def count(self, queries: np.ndarray) -> np.ndarray:
        return self.searcher.n_compared(queries)


def _faiss_builder(make: Callable) -> Callable[[np.ndarray, int], _FaissSearch]:
    return lambda gallery, seed: _FaissSearch(make(gallery))


def _ivf_methods(n_lists: int, probes: tuple[int, ...], seed: int) -> list[Method]:
    """One IVF method per probe count; the index is trained once, by whichever is built first."""
    from tirg.index import faiss_peers

    trained: dict[int, faiss_peers.FaissSearcher] = {}

    def builder(position: int) -> Callable:
        def make(gallery: np.ndarray) -> faiss_peers.FaissSearcher:
            if not trained:
                trained.update(enumerate(faiss_peers.faiss_ivf_flat(gallery, n_lists, probes, seed=seed)))
            return trained[position]

        return _faiss_builder(make)

    return [Method(f"faiss-ivf lists={n_lists} probe={p}", "faiss-ivf", builder(i)) for i, p in enumerate(probes)]


class IndexMethod:
    """An opened index (tirg.index.opened) as a comparison method: search, and the gallery vectors
    each query is compared with."""

    def __init__(self, opened: OpenedIndex, rerank: int = 0) -> None:
        self.opened = opened
        self.rerank = rerank
        self._k = 1

    def __call__(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> SearchOutput:
        self._k = k
        if self.opened.kind == "lsh":  # fallback queries count as comparing with the whole gallery, as in lsh.py
            result = self.opened.index.search(queries, k, exclude=exclude)
            return SearchOutput(result.ids, np.where(result.fallback, len(self.opened.index.gallery), result.n_candidates))
        _, ids = self.opened.search(queries, k, exclude=exclude, rerank=self.rerank)
        return SearchOutput(ids, None)

    def count(self, queries: np.ndarray) -> np.ndarray:
        """All vectors (flat), those in the probed lists (ivf, ivfpq), or the HNSW distance evaluations; not timed."""
        from tirg.index.faiss_peers import FaissSearcher, import_faiss

        faiss = import_faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        kind = self.opened.kind
        if kind == "flat":
            return np.full(len(queries), self.opened.manifest["num_gallery"], dtype=np.int64)
        if kind == "hnsw":
            faiss.cvar.hnsw_stats.reset()
            self.opened.index.search(queries, self._k)
            return np.full(len(queries), faiss.cvar.hnsw_stats.ndis // len(queries), dtype=np.int64)
        ivfs = [faiss.extract_index_ivf(shard) for shard in self.opened.shards]
        return sum(FaissSearcher(kind, ivf, ivf.ntotal, ivf.d, n_probe=ivf.nprobe).n_compared(queries) for ivf in ivfs)


def index_method_name(opened: OpenedIndex, rerank: int = 0) -> str:
    settings = " ".join(f"{k}={v}" for k, v in {**opened.search_settings, **({"rerank": rerank} if rerank else {})}.items())
    return f"{opened.manifest.get('factory') or opened.kind} {settings}".strip()
