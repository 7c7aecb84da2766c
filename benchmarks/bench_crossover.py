"""Where LSH overtakes exact search, and why not before: a roofline from this machine's own numbers.

Roofline (measured here, printed and written to results/bench/crossover.json):
- BLAS rate: one exact-search tile (1,024 queries x 29,789 x 512 gallery) in FLOP/s;
- stream bandwidth: a 256 MB float32 copy, bytes read + written per second;
- gather bandwidth: torch.index_select of random gallery rows, as LSH re-ranking reads them.
Exact search costs 2 N d FLOP per query; re-ranking c candidates costs at least c d 4 bytes
gathered per query, plus the probe of every table. The per-query estimates use those rates.

Crossover (tight profile, 1,000 queries): for each gallery size, exact search and each LSH
setting are timed in turn, three rounds interleaved (exact, LSH, exact, LSH, ...), so load on a
shared machine hits both; the median ratio and the top-100 overlap are reported.

    python benchmarks/bench_crossover.py
    python benchmarks/bench_crossover.py --sizes 30000 100000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks.synthetic import make_synthetic, profile
from tirg.compare import top_k_overlap
from tirg.index import LSHConfig, LSHIndex, exact_search

K = 100
SETTINGS = (LSHConfig(n_bits=18, n_tables=128),)  # the fastest with overlap >= 0.95 in bench_search


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[30_000, 60_000, 100_000, 200_000, 300_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _probe_only(index: LSHIndex, queries: np.ndarray) -> object:
    return index._probe(index.hash(queries))


def _median_seconds(run, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def roofline(rounds: int, seed: int) -> dict[str, float]:
    """This machine's BLAS rate, stream bandwidth and random-row gather bandwidth (medians)."""
    rng = np.random.default_rng(seed)
    gallery = rng.standard_normal((29_789, 512), dtype=np.float32)
    queries = rng.standard_normal((1024, 512), dtype=np.float32)
    tile = np.empty((1024, len(gallery)), dtype=np.float32)
    blas_s = _median_seconds(lambda: np.matmul(queries, gallery.T, out=tile), rounds)
    source = rng.standard_normal(64 << 20, dtype=np.float32)  # 256 MB
    target = np.empty_like(source)
    copy_s = _median_seconds(lambda: np.copyto(target, source), rounds)
    ids = torch.from_numpy(rng.integers(0, len(gallery), 1341 * 200))  # 200 queries' candidates at b=18 L=128
    rows = torch.empty((len(ids), 512))
    gather_s = _median_seconds(lambda: torch.index_select(torch.from_numpy(gallery), 0, ids, out=rows), rounds)
    return {
        "blas_gflops": 2 * queries.size * len(gallery) / blas_s / 1e9,
        "stream_gb_s": 2 * source.nbytes / copy_s / 1e9,
        "gather_gb_s": rows.numel() * 4 / gather_s / 1e9,
        "load_average_1min": os.getloadavg()[0],  # other jobs on the machine while measuring
    }


def crossover(args: argparse.Namespace, rates: dict[str, float], out_path: Path) -> list[dict]:
    """Time every size; out_path is rewritten after each, so a run cut short keeps what it measured."""
    records = []
    for size in args.sizes:
        data = make_synthetic(profile("tight", n_gallery=size, n_queries=args.queries, seed=args.seed))
        queries, exclude = data.queries, data.source_ids
        _, reference = exact_search(queries, data.gallery, K, exclude=exclude)
        for config in SETTINGS:
            index = LSHIndex.build(data.gallery, config)
            exact_times, lsh_times = [], []
            for _ in range(args.rounds):  # interleaved, so load on the machine hits both
                exact_times.append(_median_seconds(partial(exact_search, queries, data.gallery, K, exclude=exclude), 1))
                start = time.perf_counter()
                result = index.search(queries, K, exclude=exclude)
                lsh_times.append(time.perf_counter() - start)
            # Hashing and table lookups alone (the (query, id) pairs before de-duplication and re-ranking).
            probe_s = _median_seconds(partial(_probe_only, index, queries), 1)
            candidates = float(result.n_candidates.mean())
            record = {
                "gallery": size,
                "setting": config.label,
                "exact_s": statistics.median(exact_times),
                "lsh_s": statistics.median(lsh_times),
                "overlap@100": top_k_overlap(result.ids, reference),
                "candidates": candidates,
                "candidate_mb_per_query": candidates * data.gallery.shape[1] * 4 / 1e6,
                "probe_s": probe_s,
                # Per-query estimates from the roofline: exact at the BLAS rate, LSH's re-rank at the gather rate.
                "exact_estimate_ms": 2 * size * data.gallery.shape[1] / rates["blas_gflops"] / 1e6,
                "rerank_estimate_ms": candidates * data.gallery.shape[1] * 4 / rates["gather_gb_s"] / 1e6,
            }
            record["speedup"] = record["exact_s"] / record["lsh_s"]
            records.append(record)
            out_path.write_text(json.dumps({"roofline": rates, "queries": args.queries, "records": records}, indent=2))
            print(
                f"  {size:>9,} {config.label:<20} exact {record['exact_s']:6.2f} s  lsh {record['lsh_s']:6.2f} s  "
                f"speed {record['speedup']:.2f}x  overlap {record['overlap@100']:.3f}  candidates {candidates:6.0f}  "
                f"probe {probe_s:5.2f} s  estimates/query: exact {record['exact_estimate_ms']:.3f} ms, "
                f"re-rank {record['rerank_estimate_ms']:.3f} ms",
                flush=True,
            )
    return records


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rates = roofline(args.rounds, args.seed)
    print("roofline: " + ", ".join(f"{name} {value:.1f}" for name, value in rates.items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    records = crossover(args, rates, args.out / "crossover.json")
    print(f"written: {args.out / 'crossover.json'}")
    return {"roofline": rates, "queries": args.queries, "records": records}


if __name__ == "__main__":
    main()
