"""Nearest-neighbour search over feature matrices: exact (blocked top-k), LSH, and FAISS peers.

The FAISS peers live in tirg.index.faiss_peers and import faiss only when used. Index folders
on disk, built from a feature cache, are tirg.index.folder (format), tirg.index.build and
tirg.index.opened; the package does not import them, so searching arrays needs no feature cache.
"""

from tirg.index.exact import exact_search
from tirg.index.lsh import LSHConfig, LSHIndex, LSHResult
from tirg.index.lsh_tables import BucketStats, probe_masks

__all__ = ["BucketStats", "LSHConfig", "LSHIndex", "LSHResult", "exact_search", "probe_masks"]
