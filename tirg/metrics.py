"""Retrieval metrics on ranked neighbour lists: TIRG's caption-match recall@k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 50, 100)


def encode_captions(target_captions: Sequence[str], gallery_captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Map caption strings to integer labels shared by targets and gallery.

    A target caption that no gallery item has gets label -1, so it never matches.
    """
    label_of = {caption: i for i, caption in enumerate(dict.fromkeys(gallery_captions))}
    gallery_labels = np.fromiter((label_of[c] for c in gallery_captions), np.int64, len(gallery_captions))
    target_labels = np.fromiter((label_of.get(c, -1) for c in target_captions), np.int64, len(target_captions))
    return target_labels, gallery_labels


def recall_at_ks(
    neighbor_ids: np.ndarray,
    target_labels: np.ndarray,
    gallery_labels: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[int, float]:
    """Fraction of queries with a target-labelled item among their first k neighbours.

    This is TIRG's protocol: a hit is any retrieved gallery item whose caption (label)
    equals the target's caption, not only the target image itself.

    Args:
        neighbor_ids: int [Q, K] gallery ids, best first; -1 marks an empty slot.
        target_labels: int [Q] label of each query's target.
        gallery_labels: int [N] label of each gallery item.
        ks: cut-offs; each must be <= K.
    """
    neighbor_ids = np.asarray(neighbor_ids)
    if neighbor_ids.ndim != 2 or len(neighbor_ids) != len(target_labels):
        raise ValueError(f"neighbor_ids {neighbor_ids.shape} must be [Q, K] with Q={len(target_labels)}")
    too_deep = [k for k in ks if k > neighbor_ids.shape[1]]
    if too_deep:
        raise ValueError(f"recall@{too_deep} asked for but only {neighbor_ids.shape[1]} neighbours were retrieved")
    retrieved = np.where(neighbor_ids >= 0, np.asarray(gallery_labels)[neighbor_ids.clip(min=0)], -2)
    hits = retrieved == np.asarray(target_labels)[:, None]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), np.iinfo(np.int64).max)
    return {k: float(np.mean(first_hit < k)) for k in ks}
