"""FAISS IVF-PQ against exact search at 1M and 10M synthetic 512-d gallery vectors, through `tirg index`.

The gallery (benchmarks/synthetic.py, tight profile) is written once per size as a .npy file under
--work and read memory-mapped, so 10M x 512 float32 (20 GB) never has to fit in RAM. Each step runs
in its own process so its peak resident memory (VmHWM) is its own:

- exact: exact_search of the queries, streaming the memory-mapped gallery (its top-100 is the
  reference; memory-mapped gallery pages count in its RSS while they stay in the page cache);
- build: tirg.index.build.build_index (train on a seeded sample, add the gallery in blocks,
  write the index), timed as train and add;
- search: open_index memory-mapped (IO_FLAG_MMAP), then the queries at each nprobe: time per
  1,000 queries, top-100 overlap with exact, recall@100 of the synthetic labels.

FAISS and BLAS run on --threads threads (2 by default: the machine is shared). The load average is
recorded before and after each step. Results: results/bench/faiss_scale.csv and faiss_scale.md.

    python benchmarks/bench_faiss_scale.py --sizes 1000000
    python benchmarks/bench_faiss_scale.py --sizes 1000000 10000000 --work /big/disk
    python benchmarks/bench_faiss_scale.py --sizes 1000000 --steps search --nprobes 16   # reuse data and index
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from benchmarks.bench_scale import _markdown, peak_rss_mb, write_data
from tirg.compare import top_k_overlap
from tirg.metrics import recall_at_ks

K = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=300, help="queries (exact search over the memory map is the reference)")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--m", type=int, default=64, help="PQ sub-quantisers (bytes per vector at 8 bits)")
    parser.add_argument("--train_size", type=int, default=65536)
    parser.add_argument("--nprobes", nargs="+", type=int, default=[8, 32, 128])
    parser.add_argument("--reranks", nargs="+", type=int, default=[0, 1000], help="0: PQ scores only; N: exact re-rank of the best N")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=("exact", "build", "search"),
        default=["exact", "build", "search"],
        help="steps to run; rows of other steps already in faiss_scale.csv are kept",
    )
    parser.add_argument("--profile", default="tight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench"), help="where the CSV and table go")
    parser.add_argument("--work", type=Path, default=None, help="data and index files (default: --out); 10M needs about 21 GB")
    parser.add_argument("--worker", nargs=2, metavar=("STEP", "DATA_DIR"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _cache(data_dir: Path):
    """The synthetic set as a FeatureCache (memory-mapped gallery), so it goes through build_index/open_index."""
    from tirg.features import FeatureCache

    gallery = np.load(data_dir / "gallery.npy", mmap_mode="r")
    queries, sources = np.load(data_dir / "queries.npy"), np.load(data_dir / "source_ids.npy")
    manifest = {"checkpoint": "synthetic", "checkpoint_sha256": data_dir.name, "model": "synthetic", "dataset": "synthetic",
                "split": "test", "created": None}  # fmt: skip
    return FeatureCache(data_dir, manifest, queries, gallery, sources, np.full(len(queries), -1), pd.DataFrame(), pd.DataFrame())


def worker(step: str, data_dir: Path, args: argparse.Namespace) -> list[dict]:
    import faiss

    from tirg.compare.methods import IndexMethod
    from tirg.index.build import build_index
    from tirg.index.exact import exact_search
    from tirg.index.folder import IndexConfig
    from tirg.index.opened import open_index

    faiss.omp_set_num_threads(args.threads)
    cache = _cache(data_dir)
    n = len(cache.gallery_features)
    base = {"gallery": n, "step": step, "load_before": os.getloadavg()[0]}
    index_dir = data_dir / f"ivfpq_{args.nlist}_{args.m}"
    started = time.perf_counter()
    if step == "exact":
        _, ids = exact_search(cache.query_features, cache.gallery_features, K, exclude=cache.query_sources)
        seconds = time.perf_counter() - started
        np.save(data_dir / "exact_ids.npy", ids)
        rows = [{"method": "exact (memory-mapped float32)", "s_per_1000_queries": 1000 * seconds / len(ids), "overlap@100": 1.0,
                 "recall@100": _recall(ids, data_dir), "bytes_per_vector": 4 * cache.gallery_features.shape[1]}]  # fmt: skip
    elif step == "build":
        config = IndexConfig(kind="ivfpq", nlist=args.nlist, m=args.m, train_size=args.train_size, seed=args.seed)
        build_index(cache, config, index_dir, overwrite=True)
        manifest = json.loads((index_dir / "index.json").read_text())
        rows = [{"method": manifest["factory"], "train_s": manifest["build_s"]["train"], "add_s": manifest["build_s"]["add"],
                 "bytes_per_vector": manifest["bytes"] / n}]  # fmt: skip
    else:
        exact = np.load(data_dir / "exact_ids.npy")
        rows = []
        for nprobe, rerank in [(p, r) for r in args.reranks for p in args.nprobes]:
            opened = open_index([index_dir], cache, mmap=True, nprobe=nprobe)
            opened.search(cache.query_features[:10], K)  # first touch of the mapped lists outside the timing
            start = time.perf_counter()
            _, ids = opened.search(cache.query_features, K, exclude=cache.query_sources, rerank=rerank)
            seconds = time.perf_counter() - start
            name = f"{opened.manifest['factory']} nprobe={nprobe}" + (f" rerank={rerank}" if rerank else "")
            rows.append({"method": f"{name} (mmap)", "s_per_1000_queries": 1000 * seconds / len(ids),
                         f"overlap@{K}": top_k_overlap(ids, exact), f"recall@{K}": _recall(ids, data_dir),
                         "codes_scanned_per_query": float(IndexMethod(opened).count(cache.query_features).mean()),
                         "bytes_per_vector": opened.bytes / n, "rss_mb": _rss_mb()})  # fmt: skip
    elapsed = time.perf_counter() - started
    return [{**base, **row, "step_s": elapsed, "peak_rss_mb": peak_rss_mb(), "load_after": os.getloadavg()[0]} for row in rows]


def _recall(ids: np.ndarray, data_dir: Path) -> float:
    return recall_at_ks(ids, np.load(data_dir / "target_labels.npy"), np.load(data_dir / "gallery_labels.npy"), (K,))[K]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args)))
        return pd.DataFrame()
    records = []
    work = args.work or args.out
    passed = list(argv if argv is not None else sys.argv[1:])
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made FAISS's
    # k-means 7x slower with 2 threads than with 1 (PQ8x8 training 17.7 s against 2.5 s; passive: 1.6 s).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    for size in args.sizes:
        started = time.perf_counter()
        data_args = argparse.Namespace(out=work, profile=args.profile, queries=args.queries, seed=args.seed)
        data_dir = write_data(size, data_args)
        print(f"--- gallery {size:,} x 512 ({args.profile}), {args.queries} queries, data ready in "
              f"{time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        for step in args.steps:
            command = [sys.executable, __file__, *passed, "--worker", step, str(data_dir)]
            done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            for record in json.loads(done.stdout.strip().splitlines()[-1]):
                records.append(record)
                print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()), flush=True)
    results = pd.DataFrame(records)
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "faiss_scale.csv").exists():
        earlier = pd.read_csv(args.out / "faiss_scale.csv")
        kept = ~earlier.set_index(["gallery", "step"]).index.isin(results.set_index(["gallery", "step"]).index)
        results = pd.concat([earlier[kept], results], ignore_index=True).sort_values("gallery", kind="stable")
    results.to_csv(args.out / "faiss_scale.csv", index=False)
    text = f"# FAISS IVF-PQ against exact search ({args.profile} profile, {args.queries} queries, k={K}, {args.threads} threads)\n\n"
    (args.out / "faiss_scale.md").write_text(text + _markdown(results))
    print(f"\nwritten: {args.out / 'faiss_scale.csv'}, {args.out / 'faiss_scale.md'}")
    return results


if __name__ == "__main__":
    main()
