"""Build an index folder (tirg.index.folder) from a feature cache: FAISS (possibly sharded) or the project's LSH.

Training runs on a seeded sample of the gallery; vectors are added in blocks read from the
memory-mapped cache, so the float32 gallery never has to fit in RAM. Shards share the trained
quantiser (same sample and seed; its hash goes into the manifest, checked when they are opened).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tirg.features import FeatureCache
from tirg.fileio import atomic_directory, check_output_dir
from tirg.index.faiss_peers import import_faiss
from tirg.index.folder import (
    FORMAT,
    INDEX_OUTPUT,
    MANIFEST,
    METRIC,
    SINGLE_FILE,
    VERSION,
    IndexConfig,
    cache_identity,
    shard_file,
    shard_ranges,
)
from tirg.index.lsh import LSHIndex

logger = logging.getLogger(__name__)

_ADD_BLOCK_ROWS = 65536  # gallery rows read from the cache and added at once


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
    lsh = LSHIndex.build(gallery, config.lsh_config())
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
