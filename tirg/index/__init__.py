"""Nearest-neighbour search over feature matrices: exact (blocked top-k) and approximate."""

from tirg.index.exact import exact_search

__all__ = ["exact_search"]
