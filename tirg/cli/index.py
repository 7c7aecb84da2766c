"""`tirg index build|search`: a FAISS (or the project's LSH) index over a feature cache, and its comparison with exact search."""

from __future__ import annotations

import argparse
import json

from tirg.cli.runner import Runner

# Build settings that default to None: the index kind's own default applies.
_BUILD_SETTINGS = (
    ("nlist", "inverted lists (ivf, ivfpq; default about 4 sqrt(N))"),
    ("m", "PQ sub-quantisers (ivfpq, default 64) or HNSW neighbours (hnsw, default 32)"),
    ("nbits", "bits per PQ code (ivfpq, default 8) or per LSH table (lsh, default 18)"),
    ("tables", "LSH tables (default 128)"),
    ("probe_radius", "LSH multi-probe radius (default 0)"),
    ("nprobe", "lists probed by default at search (ivf, ivfpq; default 16)"),
    ("ef_search", "HNSW search beam by default (default 64)"),
    ("shard", "build only this shard of --shards (to build shards apart)"),
)


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    index = commands.add_parser(
        "index", help="FAISS (or the project's LSH) index over a feature cache: build it, search it against exact search"
    )
    sub = index.add_subparsers(dest="index_command", required=True)
    _add_build_parser(sub)
    _add_search_parser(sub)
    return {"index": run_index}


def _add_build_parser(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser(
        "build", help="train on a seeded sample of the cache's gallery, add the gallery, write the index and its manifest"
    )
    build.add_argument("--cache", required=True, help="feature cache folder (compute_and_save.py)")
    build.add_argument("--kind", required=True, choices=("flat", "ivf", "ivfpq", "hnsw", "lsh"))
    build.add_argument("--out", required=True, help="index folder to write (absent, empty, or with --overwrite an earlier index)")
    for flag, what in _BUILD_SETTINGS:
        build.add_argument(f"--{flag}", type=int, default=None, help=what)
    build.add_argument("--train_size", "--train-size", dest="train_size", type=int, default=100_000, help="gallery rows sampled to train")
    build.add_argument("--shards", type=int, default=1, help="split the gallery into this many contiguous shard files")
    build.add_argument("--seed", type=int, default=0, help="training sample, k-means and LSH hyperplanes")
    build.add_argument("--overwrite", action="store_true", help="replace the index already at --out (nothing else is ever replaced)")


def _add_search_parser(sub: argparse._SubParsersAction) -> None:
    search = sub.add_parser("search", help="recall@k, top-k overlap with exact search, time per 1,000 queries and memory, as JSON")
    search.add_argument("--index", required=True, action="append", help="index folder; repeat for shards built apart")
    search.add_argument("--cache", required=True, help="the feature cache the index was built from")
    search.add_argument(
        "--dataset_path", "--dataset-path", dest="dataset_path", help="where the cache's data set is now (scores the queries)"
    )
    search.add_argument("--nprobe", type=int, default=None, help="lists probed (ivf, ivfpq; default: the build's)")
    search.add_argument("--ef_search", "--ef-search", dest="ef_search", type=int, default=None, help="HNSW beam (default: the build's)")
    search.add_argument("--rerank", type=int, default=0, help="score the index's best N again exactly with the cache's features (0: no)")
    search.add_argument("--k", type=int, default=100, help="deepest recall cut-off and top-k overlap depth")
    search.add_argument("--queries", type=int, default=1000, help="queries per sample (capped at the cache's)")
    search.add_argument("--repeats", type=int, default=1, help="random query samples")
    search.add_argument("--seed", type=int, default=0, help="query samples")
    search.add_argument(
        "--mmap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="memory-map the index files (default: when they exceed half the available memory)",
    )


def run_index(args: argparse.Namespace) -> int:
    return _run_build(args) if args.index_command == "build" else _run_search(args)


def _run_build(args: argparse.Namespace) -> int:
    from tirg.features import load_feature_cache
    from tirg.fileio import check_output_dir
    from tirg.index.build import build_index
    from tirg.index.folder import INDEX_OUTPUT, IndexConfig

    settings = {name: getattr(args, name) for name, _ in _BUILD_SETTINGS}
    config = IndexConfig(kind=args.kind, train_size=args.train_size, shards=args.shards, seed=args.seed, **settings)
    check_output_dir(args.out, INDEX_OUTPUT, args.overwrite)  # before the cache is read
    out = build_index(load_feature_cache(args.cache), config, args.out, overwrite=args.overwrite)
    print(json.dumps({"out": str(out), **json.loads((out / "index.json").read_text())}, indent=2))
    return 0


def _run_search(args: argparse.Namespace) -> int:
    from tirg.compare.index_report import compare_index
    from tirg.features import dataset_for_cache, load_feature_cache
    from tirg.index.opened import open_index

    for flag, minimum in (("k", 1), ("queries", 1), ("repeats", 1), ("rerank", 0)):
        if getattr(args, flag) < minimum:
            raise ValueError(f"--{flag} {getattr(args, flag)}: expected an integer >= {minimum}")
    cache = load_feature_cache(args.cache)
    opened = open_index(args.index, cache, mmap=args.mmap, nprobe=args.nprobe, ef_search=args.ef_search)
    dataset = dataset_for_cache(cache, args.dataset_path)
    report = compare_index(
        opened, cache, dataset, n_queries=args.queries, n_repeats=args.repeats, k=args.k, seed=args.seed, rerank=args.rerank
    )
    print(json.dumps(report, indent=2))
    return 0
