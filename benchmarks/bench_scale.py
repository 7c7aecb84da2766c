"""How exact search, LSH and FAISS scale with the gallery: 30k, 300k and 1M synthetic 512-d vectors.

For each size the gallery is written once as .npy and every method runs in its own
process on the memory-mapped file, so each method's peak resident memory (ru_maxrss,
memory-mapped gallery pages included) is its own. Exact search runs first: its top-100
is the reference for the overlap of the others. Results go to results/bench/scale.csv
and scale.md, and are printed.

    python benchmarks/bench_scale.py                       # 30k, 300k, 1M; 1,000 queries
    python benchmarks/bench_scale.py --sizes 30000 100000  # any sizes
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from benchmarks.synthetic import PROFILES, make_synthetic, profile
from tirg.compare import CompareConfig, methods_for, repeat_seed, top_k_overlap
from tirg.index import LSHConfig
from tirg.metrics import recall_at_ks

K = 100
SCALE_LSH_GRID = (
    LSHConfig(n_bits=12, n_tables=48, probe_radius=0),
    LSHConfig(n_bits=16, n_tables=32, probe_radius=1),
    LSHConfig(n_bits=16, n_tables=64, probe_radius=0),
    LSHConfig(n_bits=16, n_tables=96, probe_radius=0),
    LSHConfig(n_bits=18, n_tables=128, probe_radius=0),
)


def compare_config(n_gallery: int) -> CompareConfig:
    # sqrt(N) IVF cells keeps k-means training at 1M to about half a minute on 2 cores.
    return CompareConfig(lsh=SCALE_LSH_GRID, faiss_lsh_bits=(), ivf_lists=int(np.sqrt(n_gallery)), ivf_probes=(8, 32))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[30_000, 300_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--profile", default="tight", choices=sorted(PROFILES))
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, metavar=("DATA_DIR", "METHOD"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_data(size: int, args: argparse.Namespace) -> Path:
    data_dir = args.out / "scale_data" / f"{args.profile}_{size}_{args.queries}_{args.seed}"
    if not (data_dir / "done").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        config = profile(args.profile, n_gallery=size, n_queries=args.queries, seed=args.seed)
        data = make_synthetic(config, gallery_out=data_dir / "gallery.npy")
        for name in ("queries", "source_ids", "target_labels", "gallery_labels"):
            np.save(data_dir / f"{name}.npy", getattr(data, name))
        (data_dir / "done").touch()
    return data_dir


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because Linux carries ru_maxrss over from the
    parent across fork and exec, so a worker started by a big parent would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(data_dir: Path, method_name: str, seed: int) -> dict:
    """Build and search one method on the memory-mapped data; print its measurements as JSON."""
    gallery = np.load(data_dir / "gallery.npy", mmap_mode="r")
    queries, sources = np.load(data_dir / "queries.npy"), np.load(data_dir / "source_ids.npy")
    targets, labels = np.load(data_dir / "target_labels.npy"), np.load(data_dir / "gallery_labels.npy")
    rss_before_mb = peak_rss_mb()
    method = next(m for m in methods_for(compare_config(len(gallery)), len(gallery)) if m.name == method_name)
    start = time.perf_counter()
    search = method.build(gallery, repeat_seed(seed, 0))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    out = search(queries, K, sources)
    query_s = time.perf_counter() - start
    n_compared = out.n_compared if out.n_compared is not None else search.count(queries)
    if method.family == "exact":
        np.save(data_dir / "exact_ids.npy", out.ids)
    return {
        "gallery": len(gallery),
        "method": method.name,
        "family": method.family,
        "build_s": build_s,
        "query_s": query_s,
        f"recall@{K}": recall_at_ks(out.ids, targets, labels, (K,))[K],
        f"overlap@{K}": top_k_overlap(out.ids, np.load(data_dir / "exact_ids.npy")),
        "candidates": float(n_compared.mean()),
        "rss_before_mb": rss_before_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def crossover_table(results: pd.DataFrame, overlap_target: float = 0.95) -> pd.DataFrame:
    """Per size: exact time, the fastest LSH and FAISS IVF settings reaching the overlap target, speedups."""
    rows = []
    for size, group in results.groupby("gallery"):
        exact = group[group["family"] == "exact"].iloc[0]
        row = {"gallery": size, "exact_s": exact["query_s"]}
        for family in ("lsh", "faiss-ivf"):
            good = group[(group["family"] == family) & (group[f"overlap@{K}"] >= overlap_target)]
            best = good.loc[good["query_s"].idxmin()] if not good.empty else None
            row[f"best_{family}"] = "none reaches target" if best is None else best["method"]
            row[f"{family}_speedup"] = np.nan if best is None else exact["query_s"] / best["query_s"]
        # DESIGN.md's budget: an LSH setting within 1 point of exact recall@100 and faster than exact.
        close = group[(group["family"] == "lsh") & (group[f"recall@{K}"] >= exact[f"recall@{K}"] - 0.01)]
        fastest = close.loc[close["query_s"].idxmin()] if not close.empty else None
        row["lsh_within_1pt_recall"] = "none" if fastest is None else fastest["method"]
        row["its_speedup"] = np.nan if fastest is None else exact["query_s"] / fastest["query_s"]
        flat = group[group["family"] == "faiss-flat"]
        row["exact_over_faiss_flat"] = exact["query_s"] / flat.iloc[0]["query_s"] if not flat.empty else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table (pandas' to_markdown needs the optional tabulate package)."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1], args.seed)))
        return pd.DataFrame()
    logging.basicConfig(level=logging.WARNING)
    records = []
    for size in args.sizes:
        started = time.perf_counter()
        data_dir = write_data(size, args)
        print(
            f"--- gallery {size:,} x 512 ({args.profile}), {args.queries} queries (data ready in {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        for method in methods_for(compare_config(size), size):
            command = [sys.executable, __file__, "--worker", str(data_dir), method.name, "--seed", str(args.seed)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            record = json.loads(done.stdout.strip().splitlines()[-1])
            records.append(record)
            print(
                f"  {record['method']:<32} build {record['build_s']:7.2f} s  query {record['query_s']:7.2f} s  "
                f"recall@{K} {record[f'recall@{K}']:.3f}  overlap {record[f'overlap@{K}']:.3f}  "
                f"candidates {record['candidates']:>9.0f}  peak RSS {record['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    results = pd.DataFrame(records)
    table = crossover_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "scale.csv", index=False)
    text = (
        f"# Scale benchmark ({args.profile} profile, {args.queries} queries, k={K})\n\n"
        + _markdown(results)
        + "\n## Crossover (overlap >= 0.95)\n\n"
        + _markdown(table)
    )
    (args.out / "scale.md").write_text(text)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nwritten: {args.out / 'scale.csv'}, {args.out / 'scale.md'}")
    return results


if __name__ == "__main__":
    main()
