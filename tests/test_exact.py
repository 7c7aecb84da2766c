"""Exact blocked top-k search against a full sort, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from tirg.index import exact_search


def _data(n_queries: int, n_gallery: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n_queries, dim), dtype=np.float32),
        rng.standard_normal((n_gallery, dim), dtype=np.float32),
    )


def _full_sort(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    sims = queries.astype(np.float64) @ gallery.astype(np.float64).T
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        sims[rows, exclude[rows]] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("block_size, gallery_block_size", [(7, 50), (1000, 100_000), (1, 13)])
def test_blocked_top_k_equals_full_sort(block_size: int, gallery_block_size: int) -> None:
    queries, gallery = _data(40, 230, 16, seed=0)
    exclude = np.random.default_rng(1).integers(-1, 230, size=40)
    scores, ids = exact_search(queries, gallery, 25, exclude=exclude, block_size=block_size, gallery_block_size=gallery_block_size)
    np.testing.assert_array_equal(ids, _full_sort(queries, gallery, 25, exclude))
    expected = np.take_along_axis(queries @ gallery.T, ids, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert (np.diff(scores, axis=1) <= 0).all(), "best first"


def test_excluded_id_is_never_returned_even_when_k_is_all_but_one() -> None:
    queries, gallery = _data(5, 12, 4, seed=2)
    exclude = np.array([0, 3, 11, -1, 7])
    _, ids = exact_search(queries, gallery, 11, exclude=exclude, gallery_block_size=5)
    for row, excluded in zip(ids, exclude):
        assert excluded not in row
        assert len(set(row.tolist())) == 11


def test_memory_mapped_gallery_gives_the_same_result(tmp_path) -> None:
    queries, gallery = _data(9, 100, 8, seed=3)
    np.save(tmp_path / "gallery.npy", gallery)
    mapped = np.load(tmp_path / "gallery.npy", mmap_mode="r")
    expected = exact_search(queries, gallery, 10)
    got = exact_search(queries, mapped, 10, gallery_block_size=30)
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize(
    "queries, gallery, k, exclude, message",
    [
        (np.ones((3, 4)), np.ones((10, 5)), 2, None, "width 4, expected 5"),
        (np.ones(4), np.ones((10, 4)), 2, None, "queries must be a 2-D"),
        (np.ones((3, 4)), np.ones((10, 4)), 11, None, "k=11"),
        (np.ones((3, 4)), np.ones((10, 4)), 10, np.array([0, 1, 2]), "minus the 1 excluded"),
        (np.ones((3, 4)), np.ones((10, 4)), 0, None, "k=0"),
        (np.ones((3, 4)), np.ones((10, 4)), 2, np.array([0, 1]), "exclude must be an integer array of shape"),
        (np.ones((3, 4)), np.ones((10, 4)), 2, np.array([0, 1, 10]), "exclude[2]=10"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_it(queries, gallery, k, exclude, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        exact_search(queries, gallery, k, exclude=exclude)


@pytest.mark.parametrize("where", ["queries", "gallery"])
def test_nan_features_are_rejected_naming_the_row(where: str) -> None:
    queries, gallery = _data(3, 10, 4, seed=4)
    bad = queries if where == "queries" else gallery
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=f"{where} row 2 holds NaN"):
        exact_search(queries, gallery, 3)
