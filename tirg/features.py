"""Feature caches: composed query and gallery features on disk, with a manifest that describes them.

A cache folder holds
    query_features.npy    float32 [Q, d], rows L2-normalised
    gallery_features.npy  float32 [N, d], rows L2-normalised
    query_sources.npy     int64 [Q]   gallery id of each query's source image
    query_targets.npy     int64 [Q]   gallery id of the target image, -1 where unknown
    queries.csv           source, target, text, target_caption
    gallery.csv           path, caption
    manifest.json         model, checkpoint hash, data set, its loader options and split, the
                          query text mode, the retrieval protocol, preprocessing, shapes
Only plain `.npy` (no pickle), CSV and JSON. Loading memory-maps the arrays and refuses a cache
whose manifest differs from what the caller expects, or whose files disagree with the manifest.
`dataset_for_cache` rebuilds the data set a cache describes (same loader, options and query
texts), so its images and its scoring rules can be used with the cached features.
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

from tirg.checkpoint import load_checkpoint, load_model
from tirg.config import TrainConfig, with_query_texts
from tirg.data import RetrievalDataset, image_transform, load_dataset
from tirg.data.complete_text import complete_text_queries
from tirg.errors import CacheError
from tirg.evaluate import compute_image_features, l2_normalize, query_features_for
from tirg.fileio import OutputKind, atomic_directory, check_output_dir
from tirg.models.image import preprocessing_record

FORMAT = "tirg-feature-cache"
# 2: the manifest records the loader options, the query text mode and the retrieval protocol.
VERSION = 2
MANIFEST = "manifest.json"
ARRAYS = {
    "query_features": np.float32,
    "gallery_features": np.float32,
    "query_sources": np.int64,
    "query_targets": np.int64,
}
TABLES = ("queries.csv", "gallery.csv")
FEATURE_CACHE = OutputKind("feature cache", MANIFEST, FORMAT, frozenset((MANIFEST, *TABLES, *(f"{name}.npy" for name in ARRAYS))))
QUERY_COLUMNS = {"source": np.int64, "target": np.int64, "text": str, "target_caption": str}
GALLERY_COLUMNS = {"path": str, "caption": str}
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

    @property
    def exclude_source(self) -> bool:
        """Whether a query's own source image is left out of its results (the data set's protocol)."""
        return bool(self.manifest["protocol"]["exclude_source"])


def retrieval_protocol(dataset: RetrievalDataset) -> dict[str, Any]:
    """How `dataset` scores a ranking: source excluded or not, the metric's code, the search depth beyond k.

    Recorded in the manifest and compared with the rebuilt data set, so a cache is never scored
    under rules other than the ones it was computed for.
    """
    return {
        "exclude_source": bool(dataset.exclude_source),
        "metric": type(dataset).retrieval_metrics.__qualname__,
        # Neighbours searched beyond the deepest k (FashionIQ: room for repeated ASINs).
        "extra_search_depth": int(dataset.search_depth([1]) - 1),
    }


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
        **_source_record(checkpoint, state, config, dataset, dataset_path, split),
        "preprocessing": preprocessing_record(model.img_model, image_size),
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


def _source_record(
    checkpoint: str | Path, state: dict[str, Any], config: TrainConfig, dataset: RetrievalDataset, dataset_path: str, split: str
) -> dict[str, Any]:
    """The manifest's account of where the features come from: checkpoint, data set and its options, query texts, protocol."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": state["model_name"],
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "checkpoint_iteration": int(state["iteration"]),
        "dataset": config.dataset,
        "dataset_path": str(dataset_path),
        "dataset_options": config.dataset_options(),
        "split": split,
        "text": {"use_complete_text_query": config.use_complete_text_query, "text_encoder": config.text_encoder},
        "protocol": retrieval_protocol(dataset),
    }


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
    manifest = _read_manifest(path)
    wanted = dict(expect or {})
    unknown = set(wanted) - set(MATCHED_FIELDS)
    if unknown:
        raise ValueError(f"cannot match cache on {sorted(unknown)}; fields are {MATCHED_FIELDS}")
    if checkpoint is not None:
        wanted["checkpoint_sha256"] = file_sha256(checkpoint)
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise CacheError(f"{path}: cache has {key}={manifest.get(key)!r}, expected {value!r}; recompute it")
    if checkpoint is not None:
        check_preprocessing(manifest, path, checkpoint)
    arrays = _map_arrays(path, manifest)
    queries, gallery = _read_tables(path, manifest)
    return FeatureCache(path, manifest, queries=queries, gallery=gallery, **arrays)


def _read_manifest(path: Path) -> dict[str, Any]:
    """The cache's manifest, refused unless it is this format's current version."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CacheError(f"{manifest_path} is missing: {path} is not a feature cache (run compute_and_save.py)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CacheError(f"{manifest_path}: malformed JSON at line {error.lineno}: {error.msg}") from None
    if manifest.get("format") != FORMAT:
        raise CacheError(f"{manifest_path}: expected 'format': {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise CacheError(
            f"{manifest_path}: cache format version {manifest.get('version')!r}, this tirg reads version {VERSION} "
            "(which records the data set options, query texts and retrieval protocol); recompute it with "
            f"`python compute_and_save.py --checkpoint {manifest.get('checkpoint', 'CHECKPOINT')} --out {path} --overwrite`"
        )
    return manifest


def _map_arrays(path: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """The cache's arrays, memory-mapped, each refused unless a plain .npy of the shape and dtype the manifest says."""
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
    return arrays


def _read_tables(path: Path, manifest: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """queries.csv and gallery.csv, their texts as written, refused unless their row counts are the manifest's."""
    try:
        # Texts stay strings exactly as written: no "nan"/"null" to NaN, no "007" or "1.0" to numbers.
        queries = pd.read_csv(path / "queries.csv", dtype=QUERY_COLUMNS, keep_default_na=False)
        gallery = pd.read_csv(path / "gallery.csv", dtype=GALLERY_COLUMNS, keep_default_na=False)
    except FileNotFoundError as error:
        raise CacheError(f"{error.filename} is missing from the cache") from None
    except ValueError as error:
        raise CacheError(f"{path}: queries.csv or gallery.csv is not as the cache writes it ({error})") from None
    if len(queries) != manifest["num_queries"] or len(gallery) != manifest["num_gallery"]:
        raise CacheError(
            f"{path}: queries.csv/gallery.csv have {len(queries)}/{len(gallery)} rows, "
            f"the manifest says {manifest['num_queries']}/{manifest['num_gallery']}"
        )
    return queries, gallery


def check_preprocessing(manifest: dict[str, Any], path: Path, checkpoint: str | Path) -> None:
    """Refuse a cache whose images were preprocessed otherwise than `checkpoint` records (a cache from
    before backbones' preprocessing was recorded, or from another size, interpolation or statistics)."""
    recorded = load_checkpoint(checkpoint).get("preprocessing")
    if recorded is not None and manifest.get("preprocessing") != recorded:
        raise CacheError(
            f"{path}: computed with preprocessing {manifest.get('preprocessing')!r}, but {checkpoint} was trained with {recorded!r}; "
            f"recompute it with `python compute_and_save.py --checkpoint {checkpoint} --out {path} --overwrite`"
        )


def check_same_checkpoint(cache: FeatureCache, other: FeatureCache, what: str = "the other cache") -> None:
    """Refuse `other` unless it was computed with the same checkpoint file (by content) as `cache`."""
    ours, theirs = cache.manifest["checkpoint_sha256"], other.manifest["checkpoint_sha256"]
    if ours != theirs:
        raise CacheError(
            f"{what} {other.path} comes from checkpoint {other.manifest['checkpoint']} (sha256 {theirs[:12]}), but "
            f"{cache.path} from {cache.manifest['checkpoint']} (sha256 {ours[:12]}): compute both caches with one checkpoint"
        )


def dataset_for_cache(cache: FeatureCache, dataset_path: str | Path | None = None) -> RetrievalDataset:
    """The data set `cache` was computed on: same loader, options, split and query texts.

    `dataset_path` is where the data set is now (default: where it was when the cache was
    computed). The rebuilt data set must have the cache's gallery and queries (counts, image
    file names, captions, query texts) and score them under the same protocol; otherwise the
    cache is refused, since its ids would show or score the wrong images.
    """
    manifest = cache.manifest
    root = dataset_path if dataset_path is not None else manifest["dataset_path"]
    dataset = load_dataset(manifest["dataset"], root, manifest["split"], **manifest["dataset_options"])
    if manifest["text"]["use_complete_text_query"]:
        dataset = complete_text_queries(dataset)
    found, wanted = (len(dataset), len(dataset.queries)), (manifest["num_gallery"], manifest["num_queries"])
    if found != wanted:
        raise CacheError(
            f"{manifest['dataset']} {manifest['split']} at {root} has {found[0]} gallery images and {found[1]} queries, "
            f"but the cache {cache.path} has {wanted[0]} and {wanted[1]}: it was computed on other data; recompute it"
        )
    _check_same_items(cache, dataset, root)
    protocol = retrieval_protocol(dataset)
    if protocol != manifest["protocol"]:
        raise CacheError(
            f"{cache.path}: computed for the retrieval protocol {manifest['protocol']}, the data set now has {protocol}; recompute it"
        )
    return dataset


def _check_same_items(cache: FeatureCache, dataset: RetrievalDataset, root: str | Path) -> None:
    """The first gallery image or query where `dataset` differs from the cache, as a CacheError."""
    columns = (
        ("gallery image file", [Path(p).name for p in cache.gallery["path"]], [Path(p).name for p in dataset.image_files]),
        ("gallery caption", cache.gallery_captions, dataset.captions),
        ("query source", cache.query_sources.tolist(), [q.source for q in dataset.queries]),
        ("query text", cache.queries["text"].tolist(), [q.text for q in dataset.queries]),
        ("query target caption", cache.target_captions, [q.target_caption for q in dataset.queries]),
    )
    for what, cached, rebuilt in columns:
        if cached != rebuilt:
            i = next(i for i, (a, b) in enumerate(zip(cached, rebuilt)) if a != b)
            raise CacheError(
                f"{cache.path}: {what} {i} is {cached[i]!r} in the cache but {rebuilt[i]!r} in "
                f"{cache.manifest['dataset']} {cache.manifest['split']} at {root}: the cache was computed on other data; recompute it"
            )
