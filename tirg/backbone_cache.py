"""Frozen-backbone feature caches: each image's pooled backbone feature computed once, on disk with a manifest.

CLIP4Cir's recipe for fast training on real photos: with the backbone frozen, its output for
an image under the evaluation transform never changes, so it is computed once and the heads
train from the cache. A cache folder holds
    features.npy    float32 [n, dim], row i for the i-th image of the list
    manifest.json   backbone, weights and their hash, preprocessing, transform, image list hash, shape
A cache whose manifest differs from what the caller would compute (another backbone, other
weights, other images or preprocessing) is refused, never silently reused or overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tirg.errors import CacheError
from tirg.fileio import OutputKind, atomic_directory

FORMAT = "tirg-backbone-features"
VERSION = 1
MANIFEST = "manifest.json"
FEATURES = "features.npy"
# A stale cache is never replaced in place: the caller names a new folder or removes the old one.
BACKBONE_FEATURES = OutputKind("backbone-feature cache", MANIFEST, FORMAT, frozenset((MANIFEST, FEATURES)))


def state_sha256(module: nn.Module, skip_prefix: str | None = None) -> str:
    """A hash of a module's parameters and buffers (names, shapes, values), optionally without one sub-module."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if skip_prefix and name.startswith(skip_prefix):
            continue
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def image_list_sha256(files: Sequence[str | Path]) -> str:
    return hashlib.sha256("\n".join(str(Path(f).resolve()) for f in files).encode()).hexdigest()


def cache_identity(
    backbone: str, weights: str | None, weights_sha256: str, preprocessing: dict[str, Any], transform: str, files: Sequence[str | Path]
) -> dict[str, Any]:
    """What a cache's features depend on; two caches with the same identity hold the same numbers."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "backbone": backbone,
        "weights": weights or "none",
        "weights_sha256": weights_sha256,
        "preprocessing": preprocessing,
        "transform": transform,
        "images": {"count": len(files), "sha256": image_list_sha256(files)},
    }


def read_manifest(cache_dir: Path) -> dict[str, Any]:
    path = cache_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CacheError(f"{path} is not a readable backbone-feature manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CacheError(f"{path} is not a backbone-feature cache (no 'format': {FORMAT!r})")
    return manifest


def load_backbone_features(cache_dir: str | Path, identity: dict[str, Any]) -> np.ndarray:
    """The cached float32 [n, dim] features (memory-mapped); CacheError when the manifest differs from `identity`."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    stale = sorted(key for key, value in identity.items() if manifest.get(key) != value)
    if stale:
        details = "; ".join(f"{key}: cached {manifest.get(key)!r}, expected {identity[key]!r}" for key in stale)
        raise CacheError(
            f"{cache_dir} holds backbone features for something else ({details}); "
            "point --feature_cache at another folder or remove this one"
        )
    features = np.load(cache_dir / FEATURES, mmap_mode="r")
    if features.dtype != np.float32 or features.shape != (identity["images"]["count"], manifest.get("dim")):
        raise CacheError(
            f"{cache_dir / FEATURES} is {features.dtype} {features.shape}, "
            f"the manifest says float32 [{identity['images']['count']}, {manifest.get('dim')}]"
        )
    return features


def cached_backbone_features(cache_dir: str | Path, identity: dict[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load the cache at `cache_dir` if it exists (refused when stale), else `compute()` and write it whole."""
    cache_dir = Path(cache_dir)
    if cache_dir.exists():
        if not (cache_dir / MANIFEST).is_file():
            if any(cache_dir.iterdir()):
                raise CacheError(f"{cache_dir} exists and is not a backbone-feature cache (no {MANIFEST}); it is left untouched")
        else:
            return load_backbone_features(cache_dir, identity)
    features = np.ascontiguousarray(compute(), dtype=np.float32)
    if features.ndim != 2 or len(features) != identity["images"]["count"]:
        raise ValueError(f"computed features have shape {features.shape}, expected [{identity['images']['count']}, dim]")
    with atomic_directory(cache_dir, BACKBONE_FEATURES) as staging:
        np.save(staging / FEATURES, features)
        (staging / MANIFEST).write_text(json.dumps({**identity, "dim": int(features.shape[1])}, indent=2))
    return load_backbone_features(cache_dir, identity)


@torch.no_grad()
def compute_features(features_of: Callable[[torch.Tensor], torch.Tensor], batches: Any, device: str | torch.device = "cpu") -> np.ndarray:
    """Concatenate `features_of(images)` over `batches` of (images, ...) tuples, in order."""
    return np.concatenate([features_of(batch[0].to(device)).float().cpu().numpy() for batch in batches])
