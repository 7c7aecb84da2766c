from __future__ import annotations

import numpy as np
import pytest

from tirg.hashing import codes
from tirg.hashing.codes import available_cpus, hamming_distances, hamming_rank, pack_codes, sign_codes


def naive_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[int(np.sum(x != y)) for y in b] for x in a])


def unpack_codes(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """The inverse of pack_codes (bool [n, n_bits]), to check it: bit j of a code is bit j % 64 of word j // 64."""
    as_bytes = np.ascontiguousarray(packed, dtype="<u8").view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n_bits].astype(bool)


def random_bits(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return rng.integers(0, 2, (n, bits)).astype(bool)


@pytest.mark.parametrize("bits", [1, 16, 64, 70, 128])
def test_pack_round_trip_and_popcount_matches_naive(bits: int) -> None:
    rng = np.random.default_rng(bits)
    a, b = random_bits(rng, 7, bits), random_bits(rng, 11, bits)
    packed_a, packed_b = pack_codes(a), pack_codes(b)
    assert packed_a.dtype == np.uint64 and packed_a.shape == (7, -(-bits // 64))
    assert (unpack_codes(packed_a, bits) == a).all()
    assert (hamming_distances(packed_a, packed_b) == naive_distances(a, b)).all()


def test_bit_order_within_a_word() -> None:
    bits = np.zeros((1, 64), dtype=bool)
    bits[0, [0, 3, 63]] = True
    assert pack_codes(bits)[0, 0] == (1 << 0) | (1 << 3) | (1 << 63)


def test_sign_codes_map_zero_to_minus_one() -> None:
    assert sign_codes(np.array([[0.5, 0.0, -0.2]])).tolist() == [[True, False, False]]


@pytest.mark.parametrize(
    ("bits", "n_db", "k"), [(4, 300, None), (4, 5000, 100), (64, 5000, 1), (64, 5000, 100), (64, 5000, 5000), (96, 3000, 50)]
)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_ranking_is_distance_then_index(bits: int, n_db: int, k: int | None, n_threads: int) -> None:
    # 4-bit codes make long runs of ties; the rule is ascending distance, then ascending index.
    rng = np.random.default_rng(bits + n_db)
    queries, database = random_bits(rng, 150, bits), random_bits(rng, n_db, bits)
    distances, ids = hamming_rank(pack_codes(queries), pack_codes(database), k, n_threads=n_threads)
    full = naive_distances(queries[:20], database) if n_db <= 300 else hamming_distances(pack_codes(queries[:20]), pack_codes(database))
    expected = np.lexsort((np.broadcast_to(np.arange(n_db), full.shape), full), axis=1)[:, : k or n_db]
    assert (ids[:20] == expected).all()
    assert (distances[:20] == np.take_along_axis(full, expected, axis=1)).all()
    assert ids.shape == (150, k or n_db)


def test_matches_faiss_index_binary_flat() -> None:
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    queries, database = pack_codes(random_bits(rng, 200, 64)), pack_codes(random_bits(rng, 20000, 64))
    index = faiss.IndexBinaryFlat(64)
    index.add(database.view(np.uint8))
    faiss_distances, faiss_ids = index.search(queries.view(np.uint8), 100)
    distances, ids = hamming_rank(queries, database, 100)
    assert (distances == faiss_distances).all()  # FAISS orders ties its own way; distances agree exactly
    assert (
        naive_distances(pack_codes_to_bits(queries[:3]), pack_codes_to_bits(database))[np.arange(3)[:, None], ids[:3]] == distances[:3]
    ).all()


def pack_codes_to_bits(packed: np.ndarray) -> np.ndarray:
    return unpack_codes(packed, 64)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must be packed codes, uint64"):
        hamming_rank(np.zeros((2, 1), dtype=np.int64), np.zeros((2, 1), dtype=np.uint64))
    with pytest.raises(ValueError, match="queries have 2 words per code, the database 1"):
        hamming_rank(np.zeros((2, 2), dtype=np.uint64), np.zeros((2, 1), dtype=np.uint64))
    with pytest.raises(ValueError, match="k=3 must be between 1 and the database size 2"):
        hamming_rank(np.zeros((2, 1), dtype=np.uint64), np.zeros((2, 1), dtype=np.uint64), k=3)


def test_cpu_count_falls_back_where_there_is_no_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert available_cpus() == 3
    # macOS and Windows have no os.sched_getaffinity.
    monkeypatch.delattr(codes.os, "sched_getaffinity")
    monkeypatch.setattr(codes.os, "cpu_count", lambda: 5)
    assert available_cpus() == 5
    monkeypatch.setattr(codes.os, "cpu_count", lambda: None)
    assert available_cpus() == 1
    queries, database = pack_codes(sign_codes(np.eye(4, 8) - 0.5)), pack_codes(sign_codes(np.eye(6, 8) - 0.5))
    # Each query matches its own row (distance 0), then every other row is 2 bits away: ties go to the lower index.
    assert hamming_rank(queries, database, k=2)[1].tolist() == [[0, 1], [1, 0], [2, 0], [3, 0]]
