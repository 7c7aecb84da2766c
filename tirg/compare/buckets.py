"""How an LSH setting fills its buckets on a gallery (the counts behind the bucket-size figure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tirg.index import LSHConfig, LSHIndex


def lsh_bucket_sizes(gallery: np.ndarray, settings: Sequence[LSHConfig]) -> dict[str, np.ndarray]:
    """Items per non-empty bucket over all tables of an index built with each setting, by its label."""
    sizes = {}
    for setting in settings:
        index = LSHIndex.build(gallery, setting)
        sizes[setting.label] = np.concatenate([table.bucket_sizes() for table in index.tables])
    return sizes
