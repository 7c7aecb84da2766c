import numpy as np
import pytest

from tirg.data import Query
from tirg.evaluate import recall_from_features
from tirg.index import exact_search
from tirg.metrics import encode_captions, recall_at_ks


def test_recall_on_a_constructed_case():
    # Gallery (unit vectors along angles) with shared captions: items 0 and 3 are both "red".
    angles = np.radians([0, 30, 60, 90, 120])
    gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    captions = ["red", "blue", "green", "red", "gray"]
    queries = [
        # Closest items: 0 (its own source, excluded), then 1, 2, 3, 4. Target "red" is items 0
        # and 3; with the source removed, item 3 is at rank 3 -> a hit from k = 3 on.
        Query(source=0, text="", target_caption="red"),
        # Source 1 excluded; the nearest is 0 ("red") or 2; the query points at 5 degrees -> item 0.
        Query(source=1, text="", target_caption="red"),
        # Target caption nobody has: never a hit.
        Query(source=4, text="", target_caption="purple"),
    ]
    query_features = np.array([[1, 0], [np.cos(np.radians(5)), np.sin(np.radians(5))], [0, 1]], dtype=np.float32)
    recalls = recall_from_features(query_features, gallery, queries, captions, ks=(1, 2, 3, 4))
    assert recalls == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 3), 3: pytest.approx(2 / 3), 4: pytest.approx(2 / 3)}


def test_source_exclusion_removes_an_otherwise_perfect_match():
    gallery = np.eye(3, dtype=np.float32)
    captions = ["a", "b", "a"]
    query = np.array([[1.0, 0.1, 0.0]], np.float32)
    # Unmasked, the source (item 0, caption "a") would be the top hit.
    assert exact_search(query, gallery, 1)[1][0, 0] == 0
    # Masked, the order is item 1 ("b") then item 2 ("a"): a miss at 1, a hit at 2.
    recalls = recall_from_features(query, gallery, [Query(source=0, text="", target_caption="a")], captions, ks=(1, 2))
    assert recalls == {1: 0.0, 2: 1.0}


def test_recall_counts_any_item_sharing_the_target_caption():
    neighbors = np.array([[4, 2, 0], [1, 3, 2]])
    target_labels, gallery_labels = encode_captions(["x", "y"], ["x", "z", "x", "y", "z"])
    # Query 0: target "x" is items 0 and 2; item 2 at rank 2. Query 1: "y" is item 3 at rank 2.
    assert recall_at_ks(neighbors, target_labels, gallery_labels, ks=(1, 2, 3)) == {1: 0.0, 2: 1.0, 3: 1.0}


def test_blocked_search_equals_full_sort_reference():
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((53, 16)).astype(np.float32)
    gallery = rng.standard_normal((301, 16)).astype(np.float32)
    exclude = rng.integers(0, 301, size=53)
    scores, ids = exact_search(queries, gallery, 20, exclude=exclude, block_size=7)
    full = queries @ gallery.T
    full[np.arange(53), exclude] = -np.inf
    reference = np.argsort(-full, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(ids, reference)
    np.testing.assert_allclose(scores, np.take_along_axis(full, reference, axis=1), rtol=1e-5)


def test_blocked_recall_equals_full_matrix_recall():
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((200, 8)).astype(np.float32)
    captions = [f"c{i % 70}" for i in range(200)]
    sources = rng.integers(0, 200, size=90)
    queries = [Query(int(s), "", captions[int(t)]) for s, t in zip(sources, rng.integers(0, 200, size=90))]
    query_features = gallery[sources] + 0.5 * rng.standard_normal((90, 8)).astype(np.float32)
    recalls = recall_from_features(query_features, gallery, queries, captions, ks=(1, 5, 10, 50))

    normalized_q = query_features / np.linalg.norm(query_features, axis=1, keepdims=True)
    normalized_g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sims = normalized_q @ normalized_g.T
    sims[np.arange(90), sources] = -1e11
    order = np.argsort(-sims, axis=1)
    for k in (1, 5, 10, 50):
        hits = [q.target_caption in {captions[j] for j in order[i, :k]} for i, q in enumerate(queries)]
        assert recalls[k] == pytest.approx(np.mean(hits))
