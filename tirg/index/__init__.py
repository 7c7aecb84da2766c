"""Nearest-neighbour search over feature matrices: exact (blocked top-k), LSH, and FAISS peers.

The FAISS peers live in tirg.index.faiss_peers and import faiss only when used.
"""

from tirg.index.exact import exact_search
from tirg.index.lsh import LSHConfig, LSHIndex, LSHResult
from tirg.index.lsh_tables import BucketStats, probe_masks

__all__ = ["BucketStats", "LSHConfig", "LSHIndex", "LSHResult", "exact_search", "probe_masks"]
