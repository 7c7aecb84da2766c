"""Hamming ranking of packed 64-bit codes vs FAISS IndexBinaryFlat, in the same run.

Top-k ranking (k = 100, ties by database index) of Q queries against N database codes,
both drawn uniformly at random (seeded). Each repeat times `tirg.hashing.hamming_rank`
and FAISS back to back, alternating which goes first; distances are checked equal.
Writes results/bench/hamming.json and prints the times and their ratio.

    python benchmarks/bench_hamming.py            # 10,000 x 100,000, 3 repeats
    python benchmarks/bench_hamming.py --quick    # 2,000 x 100,000, 2 repeats
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from tirg.fileio import atomic_write_text
from tirg.hashing.codes import available_cpus, hamming_rank


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--database", type=int, default=100_000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 queries, 2 repeats")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.repeats = 2_000, 2
    import faiss

    rng = np.random.default_rng(args.seed)
    words = args.bits // 64
    queries = rng.integers(0, 2**64, (args.queries, words), dtype=np.uint64)
    database = rng.integers(0, 2**64, (args.database, words), dtype=np.uint64)
    index = faiss.IndexBinaryFlat(args.bits)
    index.add(database.view(np.uint8))
    ours, theirs = [], []
    for repeat in range(args.repeats):
        for which in (0, 1) if repeat % 2 == 0 else (1, 0):
            start = time.perf_counter()
            if which == 0:
                distances, _ = hamming_rank(queries, database, args.k)
                ours.append(time.perf_counter() - start)
            else:
                faiss_distances, _ = index.search(queries.view(np.uint8), args.k)
                theirs.append(time.perf_counter() - start)
        if not (distances == faiss_distances).all():
            raise AssertionError("hamming_rank and IndexBinaryFlat disagree on the top-k distances")
    result = {
        "queries": args.queries, "database": args.database, "bits": args.bits, "k": args.k, "repeats": args.repeats,
        "cpus": available_cpus(), "faiss_threads": faiss.omp_get_max_threads(),
        "hamming_rank_s": ours, "faiss_s": theirs,
        "ratio_median": float(np.median(ours) / np.median(theirs)),
    }  # fmt: skip
    atomic_write_text(args.out / "hamming.json", json.dumps(result, indent=2))
    print(f"Hamming top-{args.k}, {args.queries} x {args.database} codes of {args.bits} bits, {args.repeats} repeats")
    print(f"  tirg hamming_rank:       median {np.median(ours):.3f} s  {[f'{t:.3f}' for t in ours]}")
    print(f"  FAISS IndexBinaryFlat:   median {np.median(theirs):.3f} s  {[f'{t:.3f}' for t in theirs]}")
    print(f"  ratio (ours / FAISS):    {result['ratio_median']:.2f}  (target <= 2)")
    return result


if __name__ == "__main__":
    main()
