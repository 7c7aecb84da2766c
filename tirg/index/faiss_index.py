"""FAISS indexes on disk for galleries too large for exact search in RAM: build, save, open (memory-mapped), search.

An index folder holds the index and a manifest (`index.json`) that ties it to the feature cache
it was built from (checkpoint hash, data set, split, gallery size and a fingerprint of the
gallery rows), so searching it with another cache's queries is refused. The metric is the one
exact search uses: inner product on L2-normalised features (cosine).

Kinds: flat (exhaustive, the exact baseline), ivf (IVF-Flat), ivfpq (IVF with product-quantised
codes: 64 bytes a vector at m=64), hnsw (graph), and lsh (the project's own random-hyperplane
LSH, tirg.index.lsh, saved as plain .npy tables: it re-ranks with the cache's features, so it is
not a FAISS index). Training runs on a seeded sample of the gallery; vectors are added in blocks
read from the memory-mapped cache, so the float32 gallery never has to fit in RAM.

A gallery may be split into shards, contiguous ranges of gallery ids, each its own FAISS file:
all in one folder (`shards=N`) or one per folder (`shards=N, shard=I`, to build on several
machines). Shards share the trained quantiser (same sample and seed, checked by hash when
opened) and are searched together with faiss.IndexShards, whose successive ids give global ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tirg.errors import CacheError, ConfigError
from tirg.features import FeatureCache
from tirg.fileio import OutputKind, atomic_directory, check_output_dir
from tirg.index.faiss_peers import FaissSearcher, default_ivf_lists, import_faiss
from tirg.index.lsh import LSHConfig, LSHIndex, LSHTable

logger = logging.getLogger(__name__)

KINDS = ("flat", "ivf", "ivfpq", "hnsw", "lsh")
FORMAT = "tirg-index"
VERSION = 1
MANIFEST = "index.json"
SINGLE_FILE = "index.faiss"
MAX_SHARDS = 1000
LSH_ARRAYS = ("planes", "keys", "offsets", "n_keys", "ids")
METRIC = "inner product on L2-normalised features (cosine), as exact_search"
_ADD_BLOCK_ROWS = 65536  # gallery rows read from the cache and added at once
_FINGERPRINT_ROWS = 1024  # evenly spaced gallery rows hashed into the cache fingerprint


def shard_file(i: int) -> str:
    return f"shard_{i:03d}.faiss"


INDEX_OUTPUT = OutputKind(
    "search index", MANIFEST, FORMAT,
    frozenset((MANIFEST, SINGLE_FILE, *(shard_file(i) for i in range(MAX_SHARDS)), *(f"lsh_{a}.npy" for a in LSH_ARRAYS))),
)  # fmt: skip

# Which build settings each kind takes; a setting given for another kind is refused by name.
_SETTINGS = {"nlist": ("ivf", "ivfpq"), "m": ("ivfpq", "hnsw"), "nbits": ("ivfpq", "lsh"), "tables": ("lsh",),
             "probe_radius": ("lsh",), "nprobe": ("ivf", "ivfpq"), "ef_search": ("hnsw",)}  # fmt: skip
# Defaults: PQ64x8 (8 dimensions per sub-quantiser at 512-d), HNSW32, and the project's best LSH setting at scale.
_DEFAULTS = {"ivfpq": {"m": 64, "nbits": 8, "nprobe": 16}, "ivf": {"nprobe": 16}, "hnsw": {"m": 32, "ef_search": 64},
             "lsh": {"nbits": 18, "tables": 128, "probe_radius": 0}}  # fmt: skip


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index.

    kind: flat | ivf | ivfpq | hnsw | lsh.
    nlist: inverted lists (ivf, ivfpq); None: about 4 sqrt(N) (default_ivf_lists).
    m: PQ sub-quantisers, dividing the dimension (ivfpq, default 64); neighbours per node (hnsw, default 32).
    nbits: bits per PQ code (ivfpq, default 8); bits per hash table (lsh, default 18).
    tables, probe_radius: LSH tables (default 128) and multi-probe radius (default 0).
    nprobe, ef_search: the search-time lists probed (ivf, ivfpq; default 16) or HNSW beam (default 64)
        stored as the index's default; `open_index` can override them.
    train_size: gallery rows sampled (seeded) to train the quantisers.
    shards: contiguous shards the gallery is split into; shard: build only this one (None: all).
    seed: the training sample, k-means and LSH hyperplanes.
    """

    kind: str = "ivfpq"
    nlist: int | None = None
    m: int | None = None
    nbits: int | None = None
    tables: int | None = None
    probe_radius: int | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    train_size: int = 100_000
    shards: int = 1
    shard: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"--kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        for name, kinds in _SETTINGS.items():
            value = getattr(self, name)
            if value is not None and self.kind not in kinds:
                raise ConfigError(f"--{name} applies to --kind {' or '.join(kinds)}, not {self.kind}")
            if value is not None and value < (0 if name == "probe_radius" else 1):
                raise ConfigError(f"--{name} {value}: expected an integer >= {0 if name == 'probe_radius' else 1}")
        if self.train_size < 1 or self.seed < 0:
            raise ConfigError(f"--train_size {self.train_size} must be >= 1 and --seed {self.seed} >= 0")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ConfigError(f"--shards {self.shards}: expected 1 to {MAX_SHARDS}")
        if self.kind == "lsh" and self.shards != 1:
            raise ConfigError("--shards: the project's LSH index re-ranks with the cache's features and is not sharded")
        if self.shard is not None and not 0 <= self.shard < self.shards:
            raise ConfigError(f"--shard {self.shard}: expected 0 to --shards - 1 = {self.shards - 1}")

    def resolved(self, n_gallery: int, dim: int) -> IndexConfig:
        """This config with every setting of its kind filled in for a gallery of n_gallery x dim."""
        filled = {**_DEFAULTS.get(self.kind, {}), **{k: v for k, v in asdict(self).items() if v is not None}}
        if self.kind in ("ivf", "ivfpq") and self.nlist is None:
            filled["nlist"] = default_ivf_lists(n_gallery)
        config = replace(self, **filled)
        if config.kind in ("ivf", "ivfpq") and config.nlist > n_gallery:
            raise ConfigError(f"--nlist {config.nlist} is more than the {n_gallery} gallery vectors")
        if config.kind == "ivfpq" and dim % config.m:
            raise ConfigError(f"--m {config.m} must divide the feature dimension {dim}")
        if config.kind == "lsh":
            LSHConfig(n_bits=config.nbits, n_tables=config.tables, probe_radius=config.probe_radius)  # its own checks
        if self.shards > n_gallery:
            raise ConfigError(f"--shards {self.shards} is more than the {n_gallery} gallery vectors")
        return config

    def factory(self) -> str:
        """The faiss.index_factory string of a resolved FAISS kind."""
        return {"flat": "Flat", "ivf": f"IVF{self.nlist},Flat", "ivfpq": f"IVF{self.nlist},PQ{self.m}x{self.nbits}",
                "hnsw": f"HNSW{self.m}"}[self.kind]  # fmt: skip


def read_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """array[rows]; from a whole memory-mapped .npy file by positioned reads of those rows only.

    Indexing the map instead makes the kernel read ahead around every row touched: fingerprinting
    1,024 rows of a 2 GB gallery that way brought 1.9 GB into the process's resident memory, and
    re-ranking 1,000 random rows per query ran at about 60 MB/s.
    """
    filename = getattr(array, "filename", None)
    if filename is None:
        return np.asarray(array[rows])
    with open(filename, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        if shape != array.shape or fortran_order or dtype != array.dtype:  # a slice or view of the file: no offsets
            return np.asarray(array[rows])
        start, row_bytes = f.tell(), array.strides[0]
        out = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for i, row in enumerate(rows):
            flat[i] = np.frombuffer(os.pread(f.fileno(), row_bytes, start + int(row) * row_bytes), dtype=np.uint8)
    return out


def shard_ranges(n_gallery: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) gallery ranges of nearly equal size."""
    bounds = np.linspace(0, n_gallery, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def cache_identity(cache: FeatureCache) -> dict[str, Any]:
    """What ties an index to its cache: checkpoint, data set, gallery shape and a hash of evenly spaced gallery rows."""
    manifest, gallery = cache.manifest, cache.gallery_features
    rows = np.unique(np.linspace(0, len(gallery) - 1, _FINGERPRINT_ROWS).astype(np.int64))
    digest = hashlib.sha256(np.ascontiguousarray(read_rows(gallery, rows)).tobytes()).hexdigest()
    keys = ("checkpoint", "checkpoint_sha256", "model", "dataset", "split", "created")
    return {"path": str(cache.path), **{k: manifest.get(k) for k in keys}, "num_gallery": len(gallery),
            "dim": int(gallery.shape[1]), "gallery_rows_sha256": digest}  # fmt: skip


def check_index_cache(index_path: Path, built_from: dict[str, Any], cache: FeatureCache) -> None:
    """Refuse `cache` unless it is the cache the index at index_path was built from; the message names both."""
    ours = cache_identity(cache)
    differs = [
        k for k in ("checkpoint_sha256", "dataset", "split", "num_gallery", "dim", "gallery_rows_sha256") if built_from.get(k) != ours[k]
    ]
    if not differs:
        return

    def describe(c: dict[str, Any]) -> str:
        sha = (c.get("checkpoint_sha256") or "none")[:12]
        return (
            f"{c['path']} (checkpoint {c.get('checkpoint')}, sha256 {sha}, {c.get('dataset')} {c.get('split')}, "
            f"{c.get('num_gallery')} x {c.get('dim')})"
        )

    why = "another checkpoint" if "checkpoint_sha256" in differs else f"other features ({', '.join(differs)} differ)"
    raise CacheError(
        f"the index {index_path} was built from the cache {describe(built_from)}, but the cache {describe(ours)} holds "
        f"{why}: search the index with the cache it was built from, or rebuild it with `tirg index build --cache {cache.path}`"
    )


def build_index(cache: FeatureCache, config: IndexConfig, out: str | Path, overwrite: bool = False) -> Path:
    """Train on a seeded sample of the cache's gallery, add the gallery in blocks, and write the index folder `out`.

    `out` must be absent, empty or (with `overwrite`) an earlier index; it is checked before any work
    and written whole (tirg.fileio.atomic_directory).
    """
    out = Path(out)
    check_output_dir(out, INDEX_OUTPUT, overwrite)
    gallery = cache.gallery_features
    config = config.resolved(len(gallery), gallery.shape[1])
    manifest: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": config.kind, "settings": asdict(config),
                                "metric": METRIC, "dim": int(gallery.shape[1]), "num_gallery": len(gallery),
                                "cache": cache_identity(cache)}  # fmt: skip
    with atomic_directory(out, INDEX_OUTPUT, overwrite) as staging:
        if config.kind == "lsh":
            manifest.update(_build_lsh(gallery, config, staging))
        else:
            manifest.update(_build_faiss(gallery, config, staging))
        manifest["bytes"] = sum(p.stat().st_size for p in staging.iterdir())
        manifest["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    logger.info("wrote %s index to %s (%d bytes)", config.kind, out, manifest["bytes"])
    return out


def _training_sample(gallery: np.ndarray, config: IndexConfig) -> np.ndarray:
    rng = np.random.default_rng(config.seed)
    rows = np.sort(rng.choice(len(gallery), size=min(config.train_size, len(gallery)), replace=False))
    return np.ascontiguousarray(gallery[rows], dtype=np.float32)


def _build_faiss(gallery: np.ndarray, config: IndexConfig, staging: Path) -> dict[str, Any]:
    faiss = import_faiss()
    index = faiss.index_factory(gallery.shape[1], config.factory(), faiss.METRIC_INNER_PRODUCT)
    start, trained = time.perf_counter(), None
    if config.kind in ("ivf", "ivfpq"):
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))  # IndexIVFPQ's .pq needs the subclass
        ivf.cp.seed = config.seed
        if config.kind == "ivfpq":
            ivf.pq.cp.seed = config.seed
            # The factory turns on polysemous training (annealing a code order for Hamming filtering,
            # which search here never uses); it multiplied the training time several times over.
            ivf.do_polysemous_training = False
        ivf.train(_training_sample(gallery, config))
        trained = _trained_hash(ivf)
    train_s = time.perf_counter() - start
    ranges = shard_ranges(len(gallery), config.shards)
    wanted = range(config.shards) if config.shard is None else [config.shard]
    shards, add_s = [], 0.0
    for i in wanted:
        shard = faiss.clone_index(index) if config.shards > 1 else index
        start = time.perf_counter()
        for block in range(ranges[i][0], ranges[i][1], _ADD_BLOCK_ROWS):
            shard.add(np.ascontiguousarray(gallery[block : min(block + _ADD_BLOCK_ROWS, ranges[i][1])], dtype=np.float32))
        add_s += time.perf_counter() - start
        name = SINGLE_FILE if config.shards == 1 else shard_file(i)
        faiss.write_index(shard, str(staging / name))
        shards.append({"file": name, "start": ranges[i][0], "stop": ranges[i][1]})
        del shard
    return {"factory": config.factory(), "faiss_version": faiss.__version__, "shards": shards, "num_shards": config.shards,
            "trained_sha256": trained, "build_s": {"train": train_s, "add": add_s}}  # fmt: skip


def _trained_hash(ivf: Any) -> str:
    """SHA-256 of the trained quantisers (IVF centroids, PQ codebooks): shards built apart must share them."""
    faiss = import_faiss()
    digest = hashlib.sha256(ivf.quantizer.reconstruct_n(0, ivf.nlist).tobytes())
    if hasattr(ivf, "pq"):
        digest.update(faiss.vector_to_array(ivf.pq.centroids).tobytes())
    return digest.hexdigest()


def _build_lsh(gallery: np.ndarray, config: IndexConfig, staging: Path) -> dict[str, Any]:
    start = time.perf_counter()
    lsh = LSHIndex.build(gallery, _lsh_config(config))
    arrays = {
        "planes": lsh.planes,
        "keys": np.concatenate([t.keys for t in lsh.tables]),
        "offsets": np.concatenate([t.offsets for t in lsh.tables]),
        "n_keys": np.array([len(t.keys) for t in lsh.tables], dtype=np.int64),
        "ids": np.stack([t.ids for t in lsh.tables]),
    }
    for name, array in arrays.items():
        np.save(staging / f"lsh_{name}.npy", array, allow_pickle=False)
    return {"shards": [{"file": None, "start": 0, "stop": len(gallery)}], "num_shards": 1,
            "build_s": {"train": 0.0, "add": time.perf_counter() - start}}  # fmt: skip


def _lsh_config(config: IndexConfig) -> LSHConfig:
    return LSHConfig(n_bits=config.nbits, n_tables=config.tables, probe_radius=config.probe_radius, seed=config.seed)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the index folder `path`, refusing anything else."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise CacheError(f"{file} is missing: {path} is not an index folder (run `tirg index build`)")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise CacheError(f"{file}: malformed JSON at line {error.lineno}: {error.msg}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CacheError(
            f"{file}: expected 'format': {FORMAT!r}, 'version': {VERSION}, got {manifest.get('format')!r}, {manifest.get('version')!r}"
        )
    return manifest


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
    return LSHIndex(_lsh_config(settings), np.asarray(arrays["planes"]), tables, gallery)


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
