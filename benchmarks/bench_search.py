"""Acceptance run at Fashion200k test scale: exact vs FAISS IndexFlatIP, LSH grid, FAISS peers.

Writes results/bench/search_<profile>/{summary.csv, runs.csv, table.md, *.png} and
results/bench/search_acceptance.json, and prints the same numbers.

    python benchmarks/bench_search.py                # both profiles, 5 x 5,000 queries
    python benchmarks/bench_search.py --quick        # 2 x 2,000 queries, smaller grid
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from benchmarks.synthetic import PROFILES, make_synthetic, profile
from tirg.compare import (
    DEFAULT_LSH_GRID,
    ORIGINAL_LSH,
    CompareConfig,
    acceptance,
    pareto_front,
    run_comparison,
)
from tirg.index import LSHConfig
from tirg.plots.comparison_report import write_outputs

QUICK_LSH_GRID = (
    ORIGINAL_LSH,
    LSHConfig(n_bits=12, n_tables=1, probe_radius=0),
    LSHConfig(n_bits=12, n_tables=48, probe_radius=0),
    LSHConfig(n_bits=18, n_tables=128, probe_radius=0),
)
COLUMNS = [
    "method",
    "query_s_mean",
    "query_s_std",
    "recall@1_mean",
    "recall@10_mean",
    "recall@100_mean",
    "overlap@100_mean",
    "candidates_mean",
    "build_s",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=sorted(PROFILES), choices=sorted(PROFILES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="2 x 2,000 queries and 4 LSH settings")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def run_profile(name: str, config: CompareConfig, out_dir: Path, seed: int) -> dict:
    data = make_synthetic(profile(name, seed=seed))
    started = time.perf_counter()
    comparison = run_comparison(data.queries, data.gallery, data.source_ids, data.target_labels, data.gallery_labels, config)
    write_outputs(comparison, out_dir, config.overlap_target, config.ks, overwrite=True)  # the benchmark's own folder
    summary = comparison.summary
    front = summary[pareto_front(summary, "overlap@100_mean")].sort_values("query_s_mean")
    result = acceptance(summary, config.overlap_target)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(
            f"\n=== profile {name}: gallery {data.gallery.shape}, {config.n_repeats} x {config.n_queries} queries "
            f"({time.perf_counter() - started:.0f} s) ==="
        )
        print(summary[COLUMNS].to_string(index=False))
        print("\nPareto front (overlap@100 vs query time):", ", ".join(front["method"]))
        print((out_dir / "table.md").read_text())
    print(f"exact / FAISS IndexFlatIP time: {result['exact_over_faiss_flat_time']:.3f} (target <= 1.2)")
    print(
        f"best LSH ({result['best_lsh']}): {result['lsh_speedup_over_exact']:.3f}x the speed of exact search, "
        f"top-100 overlap {result['lsh_overlap']:.3f}, recall@100 gap {result['lsh_recall_gap']:+.3f} "
        f"(target: faster than exact with overlap >= {config.overlap_target}): "
        f"{'met' if result['lsh_target_met'] else 'NOT met'}"
    )
    result["pareto_front_overlap"] = list(front["method"])
    return {key: (value.item() if hasattr(value, "item") else value) for key, value in result.items()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repeats, n_queries = (2, 2000) if args.quick else (args.repeats, args.queries)
    config = CompareConfig(
        n_repeats=repeats,
        n_queries=n_queries,
        seed=args.seed,
        lsh=QUICK_LSH_GRID if args.quick else DEFAULT_LSH_GRID,
        faiss_lsh_bits=(512,) if args.quick else (512, 2048),
    )
    results = {name: run_profile(name, config, args.out / f"search_{name}", args.seed) for name in args.profiles}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "search_acceptance.json"
    path.write_text(json.dumps({"repeats": repeats, "queries": n_queries, "profiles": results}, indent=2))
    print(f"\nwritten: {path} and {', '.join(str(args.out / f'search_{n}') for n in args.profiles)}")
    return results


if __name__ == "__main__":
    main()
