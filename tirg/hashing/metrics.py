"""Ranking metrics of Hamming retrieval with class labels: mAP@all, mAP@k, precision@k.

Relevance: a database item is relevant to a query when it has the query's label.
AP of one ranked list = sum_r P@r * rel_r / sum_r rel_r (the original's compute_mAP);
a query with no relevant item in the list scores 0 and still counts in the mean
(the common CalcTopMap convention), so mAP is comparable across query sets.
"""

from __future__ import annotations

import numpy as np

_ROWS = 1024  # queries scored at once: bounds the [rows, N] relevance block


def relevance(ids: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """bool [Q, K]: whether the item ranked r for query q has q's label."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or len(ids) != len(query_labels):
        raise ValueError(f"ids {ids.shape} must be [Q, K] with Q = {len(query_labels)} queries")
    return np.asarray(database_labels)[ids] == np.asarray(query_labels)[:, None]


def average_precisions(ids: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """AP per query over the first k ranked items (all when k is None); float64 [Q]."""
    ids = np.asarray(ids)
    if k is not None:
        if not 1 <= k <= ids.shape[1]:
            raise ValueError(f"k={k} must be between 1 and the {ids.shape[1]} ranked items")
        ids = ids[:, :k]
    result = np.empty(len(ids))
    ranks = np.arange(1, ids.shape[1] + 1)
    for start in range(0, len(ids), _ROWS):
        rel = relevance(ids[start : start + _ROWS], query_labels[start : start + _ROWS], database_labels)
        hits = np.cumsum(rel, axis=1)
        n_relevant = hits[:, -1]
        summed = (hits / ranks * rel).sum(axis=1)
        result[start : start + len(rel)] = np.divide(summed, n_relevant, out=np.zeros(len(rel)), where=n_relevant > 0)
    return result


def mean_average_precision(ids: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray, k: int | None = None) -> float:
    """mAP@k (mAP@all when k is None and `ids` ranks the whole database)."""
    return float(average_precisions(ids, query_labels, database_labels, k).mean())


def precision_at_k(ids: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray, k: int) -> float:
    """Mean over queries of the fraction of relevant items among the first k."""
    if not 1 <= k <= np.asarray(ids).shape[1]:
        raise ValueError(f"k={k} must be between 1 and the {np.asarray(ids).shape[1]} ranked items")
    return float(relevance(np.asarray(ids)[:, :k], query_labels, database_labels).mean())
