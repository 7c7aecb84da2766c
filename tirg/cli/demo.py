"""`tirg demo`: generate CSS, train tirg and the baselines, evaluate, plot (what `make demo` runs)."""

from __future__ import annotations

import argparse

from tirg.cli.runner import Runner


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    demo = commands.add_parser("demo", help="generate CSS, train tirg and baselines, evaluate, plot")
    demo.add_argument("--data", default="data/css")
    demo.add_argument("--results", default="results/demo")
    demo.add_argument("--images", default="images")
    demo.add_argument("--num_iters", "--num-iters", dest="num_iters", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace the demo's own earlier results and figures")
    return {"demo": run_demo}


def run_demo(args: argparse.Namespace) -> int:
    from tirg.demo import DemoConfig
    from tirg.demo import run_demo as run

    config = DemoConfig(data_dir=args.data, results_dir=args.results, images_dir=args.images, seed=args.seed, overwrite=args.overwrite)
    if args.num_iters is not None:
        config.num_iters = args.num_iters
    print(run(config, progress=True))
    return 0
