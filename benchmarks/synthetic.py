"""Seeded clustered features shaped like a composed-retrieval test set (gallery, queries, labels).

There are no real Fashion200k features on the benchmark machines, so the benchmarks
draw a hierarchy instead: cluster centres, caption labels around them (about three
gallery items per label, as in Fashion200k's test split), gallery items around their
label, and each query near its target's label with a per-query noise level (some
compositions are good, some poor). Noise has a decaying spectrum in a random basis
(variance of direction i proportional to i^-decay), because learned embeddings
concentrate their variance in few directions. Rows are L2-normalised.

Two profiles, both calibrated so that exact search gives a recall@k curve near
TIRG's on Fashion200k (R@1/5/10/50/100 = .14/.35/.43/.63/.72 in google/tirg #12);
measured with 5,000 queries: tight .10/.23/.32/.56/.69, diffuse .29/.42/.49/.64/.69.
- "tight": big clusters of near-duplicates, queries close to them; labels are hard to
  tell apart, so the top-100 neighbours are much closer than the rest (LSH-friendly).
- "diffuse": small clusters, queries far from everything (poor composition); the
  100th neighbour is barely closer than the bulk of the gallery (LSH-hostile).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

_BLOCK_ROWS = 65536  # rows drawn at once, so 1M x 512 fits without gigabyte temporaries


@dataclass(frozen=True)
class SyntheticConfig:
    n_gallery: int = 29_789  # Fashion200k test images
    n_queries: int = 33_480  # Fashion200k test queries
    dim: int = 512
    items_per_cluster: int = 1500
    items_per_label: int = 3
    label_spread: float = 0.2  # label centre = cluster centre + label_spread * noise
    item_spread: float = 0.5  # gallery item = label centre + item_spread * noise
    query_noise: tuple[float, float] = (0.2, 0.6)  # per-query noise scale, drawn uniformly in this range
    spectrum_decay: float = 1.0
    seed: int = 0


PROFILES: dict[str, SyntheticConfig] = {
    "tight": SyntheticConfig(),
    "diffuse": SyntheticConfig(items_per_cluster=150, label_spread=0.6, item_spread=0.5, query_noise=(1.0, 4.0)),
}


@dataclass(frozen=True)
class SyntheticSet:
    gallery: np.ndarray  # float32 [N, dim], unit rows
    queries: np.ndarray  # float32 [Q, dim], unit rows
    source_ids: np.ndarray  # int64 [Q] gallery item each query starts from (excluded from its results)
    target_labels: np.ndarray  # int64 [Q]
    gallery_labels: np.ndarray  # int64 [N]


def profile(name: str, **overrides: int) -> SyntheticConfig:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return replace(PROFILES[name], **overrides)


def make_synthetic(config: SyntheticConfig, gallery_out: Path | None = None) -> SyntheticSet:
    """Draw the set; with gallery_out the gallery is written there as .npy and returned memory-mapped."""
    rng = np.random.default_rng(config.seed)
    n, d = config.n_gallery, config.dim
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.arange(1, d + 1, dtype=np.float64) ** (-config.spectrum_decay / 2)
    basis = (spectrum[:, None] / np.linalg.norm(spectrum) * rotation.T).astype(np.float32)

    def noise(rows: int) -> np.ndarray:  # E|noise|^2 = 1
        return rng.standard_normal((rows, d), dtype=np.float32) @ basis

    n_labels = max(1, n // config.items_per_label)
    n_clusters = max(1, n // config.items_per_cluster)
    label_cluster = rng.integers(0, n_clusters, n_labels)
    cluster_centres = noise(n_clusters)
    # In blocks, so 10M items (3.3M labels) need no second [labels, dim] temporary; the generator
    # fills values in order, so the blocks draw exactly what one call would.
    label_centres = np.empty((n_labels, d), dtype=np.float32)
    for start in range(0, n_labels, _BLOCK_ROWS):
        clusters = label_cluster[start : start + _BLOCK_ROWS]
        label_centres[start : start + len(clusters)] = cluster_centres[clusters] + config.label_spread * noise(len(clusters))
    # Every label has at least one gallery item; the rest are spread at random.
    gallery_labels = rng.permutation(np.concatenate([np.arange(n_labels), rng.integers(0, n_labels, n - n_labels)]))

    if gallery_out is None:
        gallery = np.empty((n, d), dtype=np.float32)
    else:
        gallery = np.lib.format.open_memmap(gallery_out, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, _BLOCK_ROWS):
        labels = gallery_labels[start : start + _BLOCK_ROWS]
        gallery[start : start + len(labels)] = _unit(label_centres[labels] + config.item_spread * noise(len(labels)))

    targets = rng.integers(0, n, config.n_queries)
    scale = rng.uniform(*config.query_noise, size=(config.n_queries, 1)).astype(np.float32)
    queries = _unit(label_centres[gallery_labels[targets]] + scale * noise(config.n_queries))
    # The source image is another item of the target's cluster, as a modified garment is similar to its source.
    item_cluster = label_cluster[gallery_labels]
    by_cluster = np.argsort(item_cluster, kind="stable")
    starts = np.searchsorted(item_cluster[by_cluster], np.arange(n_clusters + 1))
    cluster = item_cluster[targets]
    pick = starts[cluster] + (rng.random(config.n_queries) * (starts[cluster + 1] - starts[cluster])).astype(np.int64)
    if gallery_out is not None:
        gallery.flush()
        gallery = np.load(gallery_out, mmap_mode="r")
    return SyntheticSet(gallery, queries, by_cluster[pick], gallery_labels[targets].astype(np.int64), gallery_labels)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
