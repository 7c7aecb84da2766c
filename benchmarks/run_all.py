"""Every benchmark, as `make bench` runs it: the Fashion200k-scale acceptance run, the scale run, the
Fashion200k loader's indexing time, Hamming ranking, then frozen-backbone training against end to end.

    python benchmarks/run_all.py           # full: 5 x 5,000 queries; 30k, 300k, 1M gallery
    python benchmarks/run_all.py --quick   # a few minutes: 2 x 2,000 queries; 30k and 100k gallery
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_fashion200k_index, bench_frozen, bench_hamming, bench_scale, bench_search


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    out = ["--out", str(args.out)]
    bench_search.main((["--quick"] if args.quick else []) + out)
    bench_scale.main((["--sizes", "30000", "100000", "--queries", "500"] if args.quick else []) + out)
    bench_fashion200k_index.main((["--repeats", "1"] if args.quick else []) + out)
    bench_hamming.main((["--quick"] if args.quick else []) + out)
    quick_frozen = ["--image_size", "128", "--batch_size", "16", "--iters", "10", "--rounds", "2", "--per_class", "8"]
    bench_frozen.main((quick_frozen if args.quick else []) + out)


if __name__ == "__main__":
    main()
