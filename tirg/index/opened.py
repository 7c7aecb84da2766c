"""Open index folders (tirg.index.folder) for search over their cache's gallery, memory-mapped or in RAM.

Several folders are the shards of one gallery, searched together with faiss.IndexShards, whose
successive ids give global ids; an IVF-PQ search may re-rank its best candidates exactly with the
cache's float32 features.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tirg.errors import CacheError, ConfigError
from tirg.features import FeatureCache
from tirg.index.faiss_peers import FaissSearcher, import_faiss
from tirg.index.folder import LSH_ARRAYS, IndexConfig, check_index_cache, read_manifest, read_rows
from tirg.index.lsh import LSHIndex
from tirg.index.lsh_tables import LSHTable

logger = logging.getLogger(__name__)


@dataclass
class OpenedIndex:
    """An index opened for search over a cache's gallery: FAISS (possibly sharded) or the project's LSH."""

    manifest: dict[str, Any]  # the first folder's; its shards are all the shards opened
    paths: list[Path]
    index: Any  # a FAISS index (IndexShards when several) or an LSHIndex
    shards: list[Any]  # the FAISS shards, kept alive while IndexShards refers to them
    gallery: np.ndarray  # the cache's float32 gallery (memory-mapped): LSH and re-ranking score with it
    search_settings: dict[str, int]  # nprobe (ivf, ivfpq) or ef_search (hnsw) in use
    mmap: bool
    bytes: int
    load_s: float

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def search(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None, rerank: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [Q, k], ids int64 [Q, k]) over the whole gallery, best first; exclude as exact_search's.

        rerank > k: the index's best `rerank` per query are scored again exactly with the gallery's
        float32 features (IVF-PQ's usual second stage; the features may stay memory-mapped on disk).
        """
        if self.kind == "lsh":
            result = self.index.search(queries, k, exclude=exclude)
            return result.scores, result.ids
        n_gallery, dim = self.manifest["num_gallery"], self.manifest["dim"]
        depth = min(max(k, rerank), n_gallery - (exclude is not None))
        scores, ids = FaissSearcher(self.kind, self.index, n_gallery, dim).search(queries, depth, exclude=exclude)
        if depth > k:
            scores, ids = _rerank(np.ascontiguousarray(queries, dtype=np.float32), ids, self.gallery, k)
        return scores, ids


def open_index(
    paths: Sequence[str | Path], cache: FeatureCache, *, mmap: bool | None = None, nprobe: int | None = None, ef_search: int | None = None
) -> OpenedIndex:
    """Open the index folder(s) `paths` for searching `cache`'s gallery; several folders are shards of one gallery.

    Refused: a folder that is not an index, an index built from another cache (check_index_cache),
    folders whose shards are not of one build (kind, settings, trained quantisers) or do not cover the
    gallery exactly once. mmap: memory-map the FAISS files (faiss.IO_FLAG_MMAP for IVF lists,
    IO_FLAG_MMAP_IFC for flat codes); None maps them when they exceed half the available memory.
    nprobe / ef_search override the build's defaults.
    """
    if not paths:
        raise ValueError("give at least one index folder")
    paths = [Path(p) for p in paths]
    manifests = [read_manifest(p) for p in paths]
    for path, manifest in zip(paths, manifests):
        check_index_cache(path, manifest["cache"], cache)
    first = manifests[0]
    same = ("kind", "settings", "factory", "trained_sha256", "num_shards")
    for path, manifest in zip(paths[1:], manifests[1:]):
        differs = [k for k in same if manifest.get(k) != first.get(k) and not (k == "settings" and _same_but_shard(manifest, first))]
        if differs:
            raise CacheError(f"the index {path} is not a shard of the same build as {paths[0]}: {', '.join(differs)} differ")
    files = [(p / s["file"] if s["file"] else p, s["start"], s["stop"]) for p, m in zip(paths, manifests) for s in m["shards"]]
    files.sort(key=lambda f: f[1])
    _check_tiling(files, first["num_gallery"], paths)
    settings = IndexConfig(**first["settings"])
    search = _search_settings(settings, nprobe, ef_search)
    start = time.perf_counter()
    if settings.kind == "lsh":
        # Its tables are memory-mapped .npy; it re-ranks with the cache's (memory-mapped) gallery.
        index, shards, size, mapped = _open_lsh(paths[0], settings, cache.gallery_features), [], _folder_bytes(paths[0]), True
    else:
        size = sum(f.stat().st_size for f, _, _ in files)
        mapped = size > _available_bytes() / 2 if mmap is None else mmap
        index, shards = _open_faiss([f for f, _, _ in files], settings.kind, mapped, search)
    load_s = time.perf_counter() - start
    logger.info("opened %s index %s (%d bytes, %s) in %.2f s", settings.kind, ", ".join(map(str, paths)), size,
                "memory-mapped" if mapped else "in memory", load_s)  # fmt: skip
    return OpenedIndex(first, paths, index, shards, cache.gallery_features, search, mapped, size, load_s)


def _rerank(queries: np.ndarray, ids: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of each row of candidate `ids` (-1: none) by exact inner product; ties go to the lower id.

    One query at a time: measured faster than gathering a block of queries' candidates into one
    [block, candidates, dim] array (whose size then dominates), and it reads each row's ids in
    ascending order, which suits a memory-mapped gallery on disk.
    """
    top_scores = np.full((len(ids), k), -np.inf, dtype=np.float32)
    top_ids = np.full((len(ids), k), -1, dtype=np.int64)
    for i, (query, row) in enumerate(zip(queries, ids)):
        row = np.sort(row[row >= 0])
        scores = read_rows(gallery, row).astype(np.float32, copy=False) @ query
        best = np.argsort(-scores, kind="stable")[:k]
        top_scores[i, : len(best)], top_ids[i, : len(best)] = scores[best], row[best]
    return top_scores, top_ids


def _same_but_shard(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {**a["settings"], "shard": None} == {**b["settings"], "shard": None}


def _check_tiling(files: list[tuple[Path, int, int]], n_gallery: int, paths: list[Path]) -> None:
    position = 0
    for file, start, stop in files:
        if start != position:
            what = f"gallery rows {position}-{start - 1} are in no shard" if start > position else f"{file} repeats rows from {start}"
            raise CacheError(f"the index folders {', '.join(map(str, paths))} do not cover the gallery once: {what}")
        position = stop
    if position != n_gallery:
        raise CacheError(
            f"the index folders {', '.join(map(str, paths))} cover gallery rows 0-{position - 1} of {n_gallery}: give every shard"
        )


def _search_settings(settings: IndexConfig, nprobe: int | None, ef_search: int | None) -> dict[str, int]:
    """The search-time settings of the index: the build's defaults unless overridden; refused for other kinds."""
    if nprobe is not None and settings.kind not in ("ivf", "ivfpq"):
        raise ConfigError(f"--nprobe applies to ivf and ivfpq indexes, not {settings.kind}")
    if ef_search is not None and settings.kind != "hnsw":
        raise ConfigError(f"--ef_search applies to hnsw indexes, not {settings.kind}")
    for flag, value in (("--nprobe", nprobe), ("--ef_search", ef_search)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: expected an integer >= 1")
    if settings.kind in ("ivf", "ivfpq"):
        return {"nprobe": nprobe or settings.nprobe}
    return {"ef_search": ef_search or settings.ef_search} if settings.kind == "hnsw" else {}


def _open_faiss(files: list[Path], kind: str, mmap: bool, search: dict[str, int]) -> tuple[Any, list[Any]]:
    faiss = import_faiss()
    # IO_FLAG_MMAP maps IVF inverted lists; flat codes (flat, and HNSW's storage) need IO_FLAG_MMAP_IFC.
    flags = 0 if not mmap else faiss.IO_FLAG_MMAP if kind in ("ivf", "ivfpq") else faiss.IO_FLAG_MMAP_IFC
    shards = [faiss.read_index(str(f), flags) for f in files]
    for shard in shards:
        if "nprobe" in search:
            faiss.extract_index_ivf(shard).nprobe = search["nprobe"]
        if "ef_search" in search:
            shard.hnsw.efSearch = search["ef_search"]
    if len(shards) == 1:
        return shards[0], shards
    merged = faiss.IndexShards(shards[0].d, False, True)  # not threaded; successive ids: shard i starts after shard i-1
    for shard in shards:
        merged.add_shard(shard)
    return merged, shards


def _open_lsh(path: Path, settings: IndexConfig, gallery: np.ndarray) -> LSHIndex:
    arrays = {name: np.load(path / f"lsh_{name}.npy", mmap_mode="r", allow_pickle=False) for name in LSH_ARRAYS}
    key_starts = np.concatenate([[0], np.cumsum(arrays["n_keys"])])
    tables = [
        LSHTable(keys=np.asarray(arrays["keys"][a:b]), offsets=np.asarray(arrays["offsets"][a + t : b + t + 1]), ids=arrays["ids"][t])
        for t, (a, b) in enumerate(itertools.pairwise(key_starts))
    ]
    return LSHIndex(settings.lsh_config(), np.asarray(arrays["planes"]), tables, gallery)


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _available_bytes() -> int:
    """MemAvailable from /proc/meminfo, or the physical memory where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
