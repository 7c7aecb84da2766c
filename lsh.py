"""Compare exact search, LSH settings and FAISS peers on a feature cache (recall and time).

    python lsh.py --cache features/css_test --out results/lsh

R random samples of Q queries (default 5 x 5,000, without replacement, seeded) are searched by
every method; each sample draws its own LSH hyperplanes from --seed and the sample index, so the
± std covers both the query sampling and the hash functions. The "original protocol" row is the
course project's procedure (12 bits, one table, exact search only for an empty bucket); the
others use the project's (exact search for any query with fewer than k candidates). Writes
summary.csv, runs.csv, table.md (the original's Recall@100 / Time table) and the
recall-versus-time and recall@k plots to --out, and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tirg.compare import CompareConfig, Comparison, Method, compare_feature_cache, ks_up_to, lsh_grid, two_row_table
from tirg.errors import TirgError
from tirg.features import FeatureCache, check_same_checkpoint, dataset_for_cache, load_feature_cache
from tirg.fileio import check_output_dir
from tirg.plots.comparison_report import COMPARISON_RESULTS, write_outputs


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_numbers(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_output_dir(args.out, COMPARISON_RESULTS, args.overwrite)  # before any work
        config, comparison = _compare(args)
        write_outputs(comparison, Path(args.out), config.overlap_target, overwrite=args.overwrite)
    except (TirgError, ValueError, ImportError) as error:
        print(f"lsh.py: error: {error}", file=sys.stderr)
        return 2
    print(two_row_table(comparison.summary, config.overlap_target, max(comparison.ks), comparison.sampling))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="feature cache folder written by compute_and_save.py")
    parser.add_argument("--out", default="results/lsh", help="folder for the CSV, table and plots (written whole)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier comparison at --out (nothing else is ever replaced)")
    parser.add_argument(
        "--dataset_path",
        "--dataset-path",
        dest="dataset_path",
        help="where the cache's data set is now (default: the path in its manifest); it scores the queries",
    )
    parser.add_argument("--repeats", type=int, default=5, help="random query samples")
    parser.add_argument("--queries", type=int, default=5000, help="queries per sample (capped at the cache's)")
    parser.add_argument("--seed", type=int, default=0, help="query samples and, per sample, the LSH hyperplanes")
    parser.add_argument(
        "--k",
        type=int,
        default=100,
        help="deepest recall cut-off and top-k of every method (capped at the gallery size minus the excluded source)",
    )
    parser.add_argument(
        "--protocol",
        choices=["both", "original", "project"],
        default="both",
        help="LSH rows: the course project's protocol, the project's settings, or both",
    )
    parser.add_argument(
        "--original-bits",
        type=int,
        default=12,
        help="bits of the original-protocol row (the course project used 12; 10 in an earlier version)",
    )
    parser.add_argument("--no-faiss", action="store_true", help="leave out the FAISS peers")
    parser.add_argument(
        "--learned-hash-cache",
        help="feature cache of the TRAINING split: train hash heads on it and "
        "compare them with random hyperplanes at equal bits (tables 1, each probe radius)",
    )
    parser.add_argument("--hash-bits", type=int, nargs="+", default=[8, 12], help="learned code lengths")
    parser.add_argument("--hash-radii", type=int, nargs="+", default=[0, 1, 2, 3], help="probe radii of the equal-bits comparison")
    return parser


def _compare(args: argparse.Namespace) -> tuple[CompareConfig, Comparison]:
    """The comparison the flags ask for, on the cache under its data set's protocol."""
    cache = load_feature_cache(args.cache)
    dataset = dataset_for_cache(cache, args.dataset_path)
    config = CompareConfig(
        n_repeats=args.repeats,
        n_queries=args.queries,
        ks=ks_up_to(args.k),
        seed=args.seed,
        lsh=lsh_grid(args.protocol, args.original_bits),
        faiss=not args.no_faiss,
    )
    extra = _learned_hash_methods(args, cache) if args.learned_hash_cache else []
    return config, compare_feature_cache(cache, config, extra, dataset)


def _learned_hash_methods(args: argparse.Namespace, cache: FeatureCache) -> list[Method]:
    """Hash heads trained on the training split's cache (same checkpoint), beside random hyperplanes at equal bits."""
    from tirg.compare import learned_vs_random_methods
    from tirg.hashing.composed import ComposedHashConfig, train_hash_head_on_cache

    train_cache = load_feature_cache(args.learned_hash_cache, expect={"split": "train"})
    check_same_checkpoint(cache, train_cache, "--learned-hash-cache")
    heads = [train_hash_head_on_cache(train_cache, ComposedHashConfig(bits=b, seed=args.seed)) for b in args.hash_bits]
    return learned_vs_random_methods([h.planes for h in heads], args.hash_radii, seed=args.seed)


def _check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse nonsensical numbers before any work, naming the flag (argparse exits with status 2)."""
    for flag, values, minimum in (
        ("--repeats", [args.repeats], 1), ("--queries", [args.queries], 1), ("--seed", [args.seed], 0),
        ("--hash-bits", args.hash_bits, 1), ("--hash-radii", args.hash_radii, 0),
    ):  # fmt: skip
        bad = [value for value in values if value < minimum]
        if bad:
            parser.error(f"{flag} {bad[0]}: expected an integer >= {minimum}")
    if args.learned_hash_cache and max(args.hash_radii) > min(args.hash_bits):
        parser.error(f"--hash-radii {max(args.hash_radii)} is larger than --hash-bits {min(args.hash_bits)} (a radius counts flipped bits)")


if __name__ == "__main__":
    sys.exit(main())
