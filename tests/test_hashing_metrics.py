from __future__ import annotations

import numpy as np
import pytest

from tirg.hashing.codes import hamming_rank, pack_codes
from tirg.hashing.metrics import average_precisions, mean_average_precision, precision_at_k


def reference_ap(ranked_labels: list[int], label: int) -> float:
    """AP written out: precision at each relevant rank, averaged over the relevant items (0 if none)."""
    hits, total = 0, 0.0
    for rank, item in enumerate(ranked_labels, start=1):
        if item == label:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def test_ap_by_hand() -> None:
    # relevant at ranks 1, 3 and 4: (1/1 + 2/3 + 3/4) / 3
    ids = np.array([[0, 1, 2, 3, 4]])
    database_labels = np.array([7, 1, 7, 7, 2])
    assert average_precisions(ids, np.array([7]), database_labels)[0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # mAP@2 counts only the first two: one relevant, at rank 1
    assert average_precisions(ids, np.array([7]), database_labels, k=2)[0] == pytest.approx(1.0)
    assert precision_at_k(ids, np.array([7]), database_labels, 4) == pytest.approx(3 / 4)


@pytest.mark.parametrize("seed", range(5))
def test_map_matches_reference_with_ties_and_queries_without_relevant_items(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_db, n_q, bits = 60, 25, 6  # 6-bit codes: many equal distances, ranked by database index
    database_labels = rng.integers(0, 5, n_db)
    query_labels = rng.integers(0, 7, n_q)  # labels 5 and 6 have no database item: AP 0, still in the mean
    assert (~np.isin(query_labels, database_labels)).any() or seed > 0
    query_labels[0] = 6
    queries = pack_codes(rng.integers(0, 2, (n_q, bits)).astype(bool))
    database = pack_codes(rng.integers(0, 2, (n_db, bits)).astype(bool))
    _, ids = hamming_rank(queries, database)
    for k in (None, 10):
        expected = np.mean([reference_ap(database_labels[ids[i, :k]].tolist(), query_labels[i]) for i in range(n_q)])
        assert mean_average_precision(ids, query_labels, database_labels, k) == pytest.approx(expected)
    assert average_precisions(ids, query_labels, database_labels)[0] == 0.0
