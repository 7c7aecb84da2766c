"""`tirg data css|check|download`: generate the CSS data set, check a data set folder, fetch a data set."""

from __future__ import annotations

import argparse

from tirg.cli.runner import Runner
from tirg.config import TrainConfig


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
    data = commands.add_parser("data", help="generate or check a data set").add_subparsers(dest="data_command", required=True)
    css = data.add_parser("css", help="generate the CSS-style data set (64x64 PNG renders + css.json)")
    css.add_argument("--out", required=True, help="output folder")
    css.add_argument("--seed", type=int, default=0)
    css.add_argument("--n-train", "--n_train", dest="n_train", type=int, default=4000, help="training images (paper scale: 19000)")
    css.add_argument("--n-test", "--n_test", dest="n_test", type=int, default=1000, help="test images (paper scale: 19000)")
    css.add_argument("--mods-per-scene", dest="mods_per_scene", type=int, default=4)
    css.add_argument("--overwrite", action="store_true", help="replace an existing data set at --out")
    check = data.add_parser("check", help="open a data set folder's splits and decode every image; print counts and bad files")
    check.add_argument("--dataset", required=True, help="fashion200k, mitstates, fashionIQ, css, css_original, CUB, Stanford_Dogs")
    check.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", required=True)
    check.add_argument("--category_to_train", default="all", help="Fashion200k or FashionIQ categories (comma-separated)")
    _add_download_parser(data)
    return {"data": run_data}


def _add_download_parser(data: argparse._SubParsersAction) -> None:
    from tirg.download.sources import SOURCES

    fetch = data.add_parser("download", help="fetch, verify and unpack a data set or TIRG's released models, then check it")
    fetch.add_argument("name", nargs="?", choices=sorted(SOURCES), help="what to fetch (--list shows each with its status)")
    fetch.add_argument("--root", default="data", help="the folder that receives <root>/<name> and <root>/downloads/")
    fetch.add_argument("--list", action="store_true", help="print every source and its status under --root")
    fetch.add_argument("--retries", type=int, default=3, help="resumed attempts after a dropped connection")


def run_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        return _run_download(args)
    if args.data_command == "check":
        return _run_check(args)
    from tirg.data import CSSGeneratorConfig, generate_css

    config = CSSGeneratorConfig(seed=args.seed, n_train=args.n_train, n_test=args.n_test, mods_per_scene=args.mods_per_scene)
    path = generate_css(args.out, config, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from tirg.data.check import check_dataset

    options = TrainConfig(dataset=args.dataset, category_to_train=args.category_to_train).dataset_options()
    ok, lines = check_dataset(args.dataset, args.dataset_path, progress=True, **options)
    print("\n".join(lines))
    return 0 if ok else 1


def _run_download(args: argparse.Namespace) -> int:
    from tirg.download import download, list_sources
    from tirg.download.install import MANUAL

    if args.list or args.name is None:
        print("\n".join(list_sources(args.root)))
        return 0
    result = download(args.name, args.root, retries=args.retries, progress=True)
    print("\n".join(result.lines))
    return 1 if result.status == MANUAL else 0
