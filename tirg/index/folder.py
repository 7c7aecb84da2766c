"""An index folder on disk: its build settings (IndexConfig), its manifest, and the feature cache it belongs to.

An index folder holds the index and a manifest (`index.json`) that ties it to the feature cache
it was built from (checkpoint hash, data set, split, gallery size and a fingerprint of the
gallery rows), so searching it with another cache's queries is refused. The metric is the one
exact search uses: inner product on L2-normalised features (cosine).

Kinds: flat (exhaustive, the exact baseline), ivf (IVF-Flat), ivfpq (IVF with product-quantised
codes: 64 bytes a vector at m=64), hnsw (graph), and lsh (the project's own random-hyperplane
LSH, tirg.index.lsh, saved as plain .npy tables: it re-ranks with the cache's features, so it is
not a FAISS index).

A gallery may be split into shards, contiguous ranges of gallery ids, each its own FAISS file:
all in one folder (`shards=N`) or one per folder (`shards=N, shard=I`, to build on several
machines). tirg.index.build writes a folder; tirg.index.opened opens and searches one or several.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tirg.errors import CacheError, ConfigError
from tirg.features import FeatureCache
from tirg.fileio import OutputKind
from tirg.index.faiss_peers import default_ivf_lists
from tirg.index.lsh import LSHConfig

KINDS = ("flat", "ivf", "ivfpq", "hnsw", "lsh")
FORMAT = "tirg-index"
VERSION = 1
MANIFEST = "index.json"
SINGLE_FILE = "index.faiss"
MAX_SHARDS = 1000
LSH_ARRAYS = ("planes", "keys", "offsets", "n_keys", "ids")
METRIC = "inner product on L2-normalised features (cosine), as exact_search"
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
            config.lsh_config()  # its own checks
        if self.shards > n_gallery:
            raise ConfigError(f"--shards {self.shards} is more than the {n_gallery} gallery vectors")
        return config

    def factory(self) -> str:
        """The faiss.index_factory string of a resolved FAISS kind."""
        return {"flat": "Flat", "ivf": f"IVF{self.nlist},Flat", "ivfpq": f"IVF{self.nlist},PQ{self.m}x{self.nbits}",
                "hnsw": f"HNSW{self.m}"}[self.kind]  # fmt: skip

    def lsh_config(self) -> LSHConfig:
        """The LSHConfig of a resolved lsh kind."""
        return LSHConfig(n_bits=self.nbits, n_tables=self.tables, probe_radius=self.probe_radius, seed=self.seed)


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
