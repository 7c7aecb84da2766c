"""Feature caches: composed query and gallery features on disk, with a manifest that describes them.

A cache folder holds
    query_features.npy    float32 [Q, d], rows L2-normalised
    gallery_features.npy  float32 [N, d], rows L2-normalised
    query_sources.npy     int64 [Q]   gallery id of each query's source image
    query_targets.npy     int64 [Q]   gallery id of the target image, -1 where unknown
    queries.csv           source, target, text, target_caption
    gallery.csv           path, caption
    manifest.json         model, checkpoint hash, data set, split, preprocessing, shapes
Only plain `.npy` (no pickle), CSV and JSON. Loading memory-maps the arrays and refuses a cache
whose manifest differs from what the caller expects, or whose files disagree with the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tirg.checkpoint import load_model
from tirg.data import IMAGENET_MEAN, IMAGENET_STD, image_transform, load_dataset
from tirg.errors import CacheError
from tirg.evaluate import compute_image_features, l2_normalize, query_features_for
from tirg.fileio import OutputKind, atomic_directory, check_output_dir
from tirg.train import TrainConfig, with_query_texts

FORMAT = "tirg-feature-cache"
VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = {
    "query_features": np.float32,
    "gallery_features": np.float32,
    "query_sources": np.int64,
    "query_targets": np.int64,
}
TABLES = ("queries.csv", "gallery.csv")
FEATURE_CACHE = OutputKind("feature cache", MANIFEST, FORMAT, frozenset((MANIFEST, *TABLES, *(f"{name}.npy" for name in ARRAYS))))
# Manifest fields a caller may pin when loading.
MATCHED_FIELDS = ("model", "checkpoint_sha256", "dataset", "split", "dim", "normalized")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FeatureCache:
    path: Path
    manifest: dict[str, Any]
    query_features: np.ndarray
    gallery_features: np.ndarray
    query_sources: np.ndarray
    query_targets: np.ndarray
    queries: pd.DataFrame
    gallery: pd.DataFrame

    @property
    def target_captions(self) -> list[str]:
        return self.queries["target_caption"].tolist()

    @property
    def gallery_captions(self) -> list[str]:
        return self.gallery["caption"].tolist()


def compute_and_save(
    checkpoint: str | Path,
    out_dir: str | Path,
    dataset_path: str | None = None,
    split: str = "test",
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Compute the features of `split` with `checkpoint` and write a cache to `out_dir` (atomically).

    `out_dir` must be absent, empty, or (with `overwrite`) an earlier feature cache; anything else
    is refused before the model is loaded (tirg.fileio.check_output_dir).
    """
    check_output_dir(out_dir, FEATURE_CACHE, overwrite)
    model, state = load_model(checkpoint, device)
    config = TrainConfig.from_dict(state["config"])
    dataset_path = dataset_path or config.dataset_path
    dataset = with_query_texts(config, load_dataset(config.dataset, dataset_path, split, **config.dataset_options()))
    if not dataset.queries:
        raise CacheError(f"{config.dataset} {split} at {dataset_path} has no queries to cache")
    dataset.check_images()
    image_size = config.resolved_image_size()
    images = compute_image_features(model, dataset, image_transform(image_size), batch_size, num_workers, device, progress)
    composed = query_features_for(model, dataset, image_transform(image_size), images, batch_size, num_workers, device, progress)
    arrays = {
        "query_features": l2_normalize(composed),
        "gallery_features": l2_normalize(images),
        "query_sources": np.array([q.source for q in dataset.queries], dtype=np.int64),
        "query_targets": np.array([-1 if q.target is None else q.target for q in dataset.queries], dtype=np.int64),
    }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": state["model_name"],
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "checkpoint_iteration": int(state["iteration"]),
        "dataset": config.dataset,
        "dataset_path": str(dataset_path),
        "split": split,
        "preprocessing": {"image_size": image_size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "normalized": True,
        "dim": int(images.shape[1]),
        "num_queries": len(dataset.queries),
        "num_gallery": len(dataset),
        "arrays": {name: {"shape": list(array.shape), "dtype": str(array.dtype)} for name, array in arrays.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    queries = pd.DataFrame(
        {
            "source": arrays["query_sources"],
            "target": arrays["query_targets"],
            "text": [q.text for q in dataset.queries],
            "target_caption": [q.target_caption for q in dataset.queries],
        }
    )
    gallery = pd.DataFrame({"path": [str(p) for p in dataset.image_files], "caption": dataset.captions})
    return _write_cache(Path(out_dir), arrays, queries, gallery, manifest, overwrite)


def _write_cache(
    out_dir: Path, arrays: dict[str, np.ndarray], queries: pd.DataFrame, gallery: pd.DataFrame, manifest: dict, overwrite: bool
) -> Path:
    with atomic_directory(out_dir, FEATURE_CACHE, overwrite) as staging:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        queries.to_csv(staging / "queries.csv", index=False)
        gallery.to_csv(staging / "gallery.csv", index=False)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out_dir


def load_feature_cache(path: str | Path, expect: dict[str, Any] | None = None, checkpoint: str | Path | None = None) -> FeatureCache:
    """Memory-map a cache, refusing it when it does not match `expect` or `checkpoint`.

    `expect` pins manifest fields (e.g. {'dataset': 'css', 'split': 'test', 'model': 'tirg'});
    `checkpoint` pins the checkpoint file the features must come from (by content hash), so a
    cache computed before the model was retrained is refused as stale.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CacheError(f"{manifest_path} is missing: {path} is not a feature cache (run compute_and_save.py)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CacheError(f"{manifest_path}: malformed JSON at line {error.lineno}: {error.msg}") from None
    if manifest.get("format") != FORMAT:
        raise CacheError(f"{manifest_path}: expected 'format': {FORMAT!r}")
    wanted = dict(expect or {})
    unknown = set(wanted) - set(MATCHED_FIELDS)
    if unknown:
        raise ValueError(f"cannot match cache on {sorted(unknown)}; fields are {MATCHED_FIELDS}")
    if checkpoint is not None:
        wanted["checkpoint_sha256"] = file_sha256(checkpoint)
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise CacheError(f"{path}: cache has {key}={manifest.get(key)!r}, expected {value!r}; recompute it")
    arrays = {}
    for name, dtype in ARRAYS.items():
        file = path / f"{name}.npy"
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise CacheError(f"{file} is missing from the cache") from None
        except ValueError as error:
            raise CacheError(f"{file} is not a plain .npy array ({error})") from None
        described = manifest["arrays"][name]
        if list(array.shape) != described["shape"] or array.dtype != np.dtype(dtype):
            raise CacheError(f"{file} is {array.dtype}{list(array.shape)}, the manifest says {described['dtype']}{described['shape']}")
        arrays[name] = array
    try:
        queries = pd.read_csv(path / "queries.csv", keep_default_na=False)
        gallery = pd.read_csv(path / "gallery.csv", keep_default_na=False)
    except FileNotFoundError as error:
        raise CacheError(f"{error.filename} is missing from the cache") from None
    if len(queries) != manifest["num_queries"] or len(gallery) != manifest["num_gallery"]:
        raise CacheError(f"{path}: queries.csv/gallery.csv have {len(queries)}/{len(gallery)} rows, the manifest says {manifest['num_queries']}/{manifest['num_gallery']}")
    queries["target_caption"] = queries["target_caption"].astype(str)
    gallery["caption"] = gallery["caption"].astype(str)
    return FeatureCache(path, manifest, queries=queries, gallery=gallery, **arrays)
