"""The `tirg` command: data generation, training, evaluation, retrieval and the demo.

`tirg train` accepts TIRG's original `main.py` flag names (`--dataset`, `--num_iters`, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path

from tirg.compat.google_tirg import VOCABULARY_ORDERS
from tirg.config import TrainConfig
from tirg.flags import add_config_flags, flag_kwargs
from tirg.flags import parse_bool as parse_bool  # re-exported: its home was tirg.cli, and callers import it from there

logger = logging.getLogger("tirg")


# The flags `tirg train --resume` accepts: where and how fast the run continues, and how long.
RESUME_FLAGS = ("device", "loader_num_workers", "cache_images", "channels_last", "num_iters")


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed by its annotation. A flag not given is absent from the parsed
    namespace (SUPPRESS), so `--resume` can tell a flag given with its default value from one not given."""
    add_config_flags(parser, TrainConfig)
    parser.add_argument(
        "--resume",
        help="checkpoint or run folder to continue exactly where it stopped, under its saved settings"
        f" (only {', '.join('--' + name for name in RESUME_FLAGS)} may be given with it)",
    )
    parser.add_argument(
        "--use_bert", "--use-bert", dest="use_bert", default=argparse.SUPPRESS, **flag_kwargs(bool, "--use_bert"),
        help="ComposeAE's flag: pretrained sentence features, here all-MiniLM-L6-v2 (same as --text_encoder minilm)",
    )  # fmt: skip


def _add_checkpoint_commands(commands: argparse._SubParsersAction) -> None:
    dataset_option = {"action": "append", "default": [], "metavar": "KEY=VALUE", "help": "loader option, e.g. label_file_order=listdir"}
    imported = commands.add_parser("import-checkpoint", help="convert a checkpoint saved by google/tirg's main.py")
    imported.add_argument("src", help="the original checkpoint (it, opt, model_state_dict)")
    imported.add_argument("--out", required=True, help="the tirg checkpoint to write")
    imported.add_argument("--dataset", help="default: the checkpoint's opt.dataset (css3d: css_original)")
    imported.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", required=True, help="the training data")
    imported.add_argument("--dataset_option", "--dataset-option", dest="dataset_option", **dataset_option)
    imported.add_argument(
        "--vocabulary-order", "--vocabulary_order", dest="vocabulary_order", choices=VOCABULARY_ORDERS, default="first-seen",
        help="word ids as the 2019 code (first-seen; released checkpoints) or the 2021 code (sorted) numbered them",
    )  # fmt: skip
    imported.add_argument("--overwrite", action="store_true")
    exported = commands.add_parser("export-checkpoint", help="write a tirg checkpoint in the layout of google/tirg's main.py")
    exported.add_argument("src", help="a tirg checkpoint or run folder")
    exported.add_argument("--out", required=True)
    exported.add_argument("--vocabulary-order", "--vocabulary_order", dest="vocabulary_order", choices=VOCABULARY_ORDERS, default="sorted")
    exported.add_argument(
        "--dataset_path", "--dataset-path", dest="dataset_path", help="first-seen order: the training data (default: the checkpoint's)"
    )
    exported.add_argument("--dataset_option", "--dataset-option", dest="dataset_option", **dataset_option)
    exported.add_argument("--overwrite", action="store_true")


def _add_retrieve_parser(commands: argparse._SubParsersAction) -> None:
    retrieve = commands.add_parser(
        "retrieve", help="one query (a test query, or any photo plus a text) against a gallery: ranked paths, captions, scores"
    )
    retrieve.add_argument("--checkpoint", required=True)
    retrieve.add_argument("--cache", help="a feature cache of the checkpoint (compute_and_save.py); without it, the split is embedded now")
    retrieve.add_argument("--dataset", help="without --cache: the gallery's data set (default: the checkpoint's)")
    retrieve.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", help="without --cache (default: the checkpoint's)")
    retrieve.add_argument("--split", help="without --cache (default: test)")
    query = retrieve.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="any photo, preprocessed as evaluation preprocesses the gallery")
    query.add_argument("--query_index", "--query-index", dest="query_index", type=int, help="test query N of the split")
    retrieve.add_argument("--text", help="the modification; required with --image (default with --query_index: the query's own)")
    retrieve.add_argument("--top_k", "--top-k", dest="top_k", type=int, default=10)
    retrieve.add_argument("--json", action="store_true", help="print JSON instead of plain text")
    retrieve.add_argument("--out", help="save the figure here (.png, .jpg, .pdf, .svg): the query titled with its text, then the top-k")
    retrieve.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    retrieve.add_argument("--columns", type=int, default=5, help="results per row of the figure")
    retrieve.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=64)
    retrieve.add_argument("--device", default="auto")


def _dataset_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"--dataset_option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def _add_download_parser(data: argparse._SubParsersAction) -> None:
    from tirg.download.sources import SOURCES

    fetch = data.add_parser("download", help="fetch, verify and unpack a data set or TIRG's released models, then check it")
    fetch.add_argument("name", nargs="?", choices=sorted(SOURCES), help="what to fetch (--list shows each with its status)")
    fetch.add_argument("--root", default="data", help="the folder that receives <root>/<name> and <root>/downloads/")
    fetch.add_argument("--list", action="store_true", help="print every source and its status under --root")
    fetch.add_argument("--retries", type=int, default=3, help="resumed attempts after a dropped connection")


def _run_download(args: argparse.Namespace) -> int:
    from tirg.download import download, list_sources
    from tirg.download.install import MANUAL

    if args.list or args.name is None:
        print("\n".join(list_sources(args.root)))
        return 0
    result = download(args.name, args.root, retries=args.retries, progress=True)
    print("\n".join(result.lines))
    return 1 if result.status == MANUAL else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tirg", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

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

    _add_train_flags(commands.add_parser("train", help="train a composition model (TIRG's main.py flags)"))

    evaluation = commands.add_parser("eval", help="recall@k of a checkpoint on a test split")
    evaluation.add_argument("--checkpoint", required=True)
    evaluation.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", help="default: the checkpoint's")
    evaluation.add_argument("--split", default="test")
    evaluation.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=64)
    evaluation.add_argument("--device", default="auto")

    _add_checkpoint_commands(commands)
    _add_retrieve_parser(commands)

    demo = commands.add_parser("demo", help="generate CSS, train tirg and baselines, evaluate, plot")
    demo.add_argument("--data", default="data/css")
    demo.add_argument("--results", default="results/demo")
    demo.add_argument("--images", default="images")
    demo.add_argument("--num_iters", "--num-iters", dest="num_iters", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace the demo's own earlier results and figures")

    from tirg.hashing.cli import add_hash_parser

    add_hash_parser(commands)
    _add_index_parser(commands)
    return parser


def command_flags(*command: str) -> set[str]:
    """The option strings `tirg <command...>` accepts, e.g. command_flags("hash", "train")."""
    parser = _parser()
    for name in command:
        (subcommands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        parser = subcommands.choices[name]
    return {option for action in parser._actions for option in action.option_strings}


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        return _run_download(args)
    if args.data_command == "check":
        from tirg.data.check import check_dataset

        options = TrainConfig(dataset=args.dataset, category_to_train=args.category_to_train).dataset_options()
        ok, lines = check_dataset(args.dataset, args.dataset_path, progress=True, **options)
        print("\n".join(lines))
        return 0 if ok else 1
    from tirg.data import CSSGeneratorConfig, generate_css

    config = CSSGeneratorConfig(seed=args.seed, n_train=args.n_train, n_test=args.n_test, mods_per_scene=args.mods_per_scene)
    path = generate_css(args.out, config, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from tensorboardX import SummaryWriter

    from tirg import distributed
    from tirg.checkpoint import CHECKPOINT_NAME, checkpoint_file
    from tirg.early_stopping import BEST_CHECKPOINT_NAME
    from tirg.runs import new_run_dir, removed_unless_checkpointed
    from tirg.runtime import seed_everything
    from tirg.training import train
    from tirg.training_setup import resume_config

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    use_bert = getattr(args, "use_bert", None)
    if args.resume:
        # The run continues under its own saved settings; only where it runs and how long may change.
        refused = sorted(name for name in given if name not in RESUME_FLAGS) + (["use_bert"] if use_bert is not None else [])
        if refused:
            flags = ", ".join(f"--{name}" for name in refused)
            raise ValueError(
                f"--resume continues {args.resume} under its saved settings; {flags} cannot change"
                f" (only {', '.join('--' + name for name in RESUME_FLAGS)} may be given with --resume)"
            )
        config = resume_config(args.resume, given.get("num_iters"))
        for name in RESUME_FLAGS:
            if name in given:
                setattr(config, name, given[name])
    else:
        if use_bert and given.get("text_encoder", "lstm") == "lstm":
            given["text_encoder"] = "minilm"
        config = TrainConfig(**given)
    # Under torchrun every process runs this; rank 0 alone creates the run folder and writes in it.
    distributed.init_from_environment(config.device)
    try:
        main = distributed.is_main()
        if not main:
            logging.getLogger().setLevel(logging.WARNING)  # one log of the run: rank 0's
        run_dir = (
            checkpoint_file(args.resume).parent
            if args.resume
            else distributed.from_main(lambda: new_run_dir(config.log_dir, config.comment))
        )
        seed_everything(config.seed)
        # A new run's folder (and the TensorBoard events file in it) goes when the run fails before its first checkpoint.
        keep = removed_unless_checkpointed(run_dir, (CHECKPOINT_NAME, BEST_CHECKPOINT_NAME)) if main and not args.resume else nullcontext()
        with keep, SummaryWriter(str(run_dir)) if main else nullcontext() as writer:
            result = train(config, run_dir=run_dir, resume=args.resume, writer=writer, progress=main)
    finally:
        distributed.shutdown()
    if not main:
        return 0
    summary = {"run_dir": str(result.run_dir), "iteration": result.iteration, **result.metrics}
    if result.best_checkpoint is not None:
        summary.update(
            best_checkpoint=str(result.best_checkpoint), best_iteration=result.best_iteration, best_val_loss=result.best_val_loss
        )
        summary["stopped_early"] = result.stopped_early
    print(json.dumps(summary, indent=2))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from tirg.checkpoint import load_model
    from tirg.config import with_query_texts
    from tirg.data import image_transform, load_dataset
    from tirg.evaluate import evaluate
    from tirg.runtime import resolve_device

    device = resolve_device(args.device)
    model, checkpoint = load_model(args.checkpoint, device)
    config = TrainConfig.from_dict(checkpoint["config"])
    dataset = with_query_texts(
        config, load_dataset(config.dataset, args.dataset_path or config.dataset_path, args.split, **config.dataset_options())
    )
    metrics = evaluate(
        model, dataset, image_transform(config.resolved_image_size()), batch_size=args.batch_size, device=device, progress=True
    )
    print(json.dumps({"checkpoint": args.checkpoint, "iteration": checkpoint["iteration"], **metrics}, indent=2))
    return 0


def _run_import_checkpoint(args: argparse.Namespace) -> int:
    from tirg.compat.google_tirg import import_checkpoint

    checkpoint = import_checkpoint(
        args.src, args.out, args.dataset_path, args.vocabulary_order, args.dataset,
        _dataset_options(args.dataset_option), overwrite=args.overwrite,
    )  # fmt: skip
    summary = {"out": args.out, "model": checkpoint["model_name"], "iteration": checkpoint["iteration"]}
    print(json.dumps({**summary, "vocabulary": len(checkpoint["vocabulary"]), "vocabulary_order": args.vocabulary_order}, indent=2))
    return 0


def _run_export_checkpoint(args: argparse.Namespace) -> int:
    from tirg.checkpoint import checkpoint_file, load_checkpoint
    from tirg.compat.google_tirg import export_checkpoint, training_texts

    src = checkpoint_file(args.src)
    texts = None
    if args.vocabulary_order == "first-seen":
        config = TrainConfig.from_dict(load_checkpoint(src)["config"])
        texts = training_texts(config.dataset, args.dataset_path or config.dataset_path, _dataset_options(args.dataset_option))
    export_checkpoint(src, args.out, args.vocabulary_order, texts, overwrite=args.overwrite)
    print(json.dumps({"out": args.out, "vocabulary_order": args.vocabulary_order}, indent=2))
    return 0


def _run_retrieve(args: argparse.Namespace) -> int:
    from tirg.plots.retrieval_figures import retrieval_figure
    from tirg.plots.save import save_figure
    from tirg.retrieval import RetrieveConfig, retrieve

    out = Path(args.out) if args.out else None
    if out is not None:  # refused before any work
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
            raise ValueError(f"--out {out}: expected a .png, .jpg, .pdf or .svg file name")
        if out.is_dir() or (out.exists() and not args.overwrite):
            raise FileExistsError(f"--out {out} already exists; choose another name, or pass --overwrite to replace the file")
    config = RetrieveConfig(**{f.name: getattr(args, f.name) for f in fields(RetrieveConfig)})
    result = retrieve(config, progress=True)
    if out is not None:
        save_figure(retrieval_figure(result, args.columns), out)
    rows = result.rows()
    if args.json:
        target = None if result.target is None else str(result.dataset.image_files[result.target])
        query = {"image": result.query_path, "text": result.text, "query_index": args.query_index, "target": target}
        print(json.dumps({"query": query, "figure": None if out is None else str(out), "results": rows}, indent=2))
        return 0
    print(f'query: {result.query_path} + "{result.text}"')
    for row in rows:
        hit = {True: "hit ", False: "    ", None: ""}[row["hit"]]
        print(f"{row['rank']:>4}  {row['score']:.4f}  {hit}{row['path']}  {row['caption']}")
    if out is not None:
        print(f"wrote {out}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from tirg.demo import DemoConfig, run_demo

    config = DemoConfig(data_dir=args.data, results_dir=args.results, images_dir=args.images, seed=args.seed, overwrite=args.overwrite)
    if args.num_iters is not None:
        config.num_iters = args.num_iters
    table = run_demo(config, progress=True)
    print(table)
    return 0


def _add_index_parser(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser(
        "index", help="FAISS (or the project's LSH) index over a feature cache: build it, search it against exact search"
    )
    sub = index.add_subparsers(dest="index_command", required=True)
    build = sub.add_parser(
        "build", help="train on a seeded sample of the cache's gallery, add the gallery, write the index and its manifest"
    )
    build.add_argument("--cache", required=True, help="feature cache folder (compute_and_save.py)")
    build.add_argument("--kind", required=True, choices=("flat", "ivf", "ivfpq", "hnsw", "lsh"))
    build.add_argument("--out", required=True, help="index folder to write (absent, empty, or with --overwrite an earlier index)")
    for flag, what in (
        ("nlist", "inverted lists (ivf, ivfpq; default about 4 sqrt(N))"),
        ("m", "PQ sub-quantisers (ivfpq, default 64) or HNSW neighbours (hnsw, default 32)"),
        ("nbits", "bits per PQ code (ivfpq, default 8) or per LSH table (lsh, default 18)"),
        ("tables", "LSH tables (default 128)"),
        ("probe_radius", "LSH multi-probe radius (default 0)"),
        ("nprobe", "lists probed by default at search (ivf, ivfpq; default 16)"),
        ("ef_search", "HNSW search beam by default (default 64)"),
        ("shard", "build only this shard of --shards (to build shards apart)"),
    ):
        build.add_argument(f"--{flag}", type=int, default=None, help=what)
    build.add_argument("--train_size", "--train-size", dest="train_size", type=int, default=100_000, help="gallery rows sampled to train")
    build.add_argument("--shards", type=int, default=1, help="split the gallery into this many contiguous shard files")
    build.add_argument("--seed", type=int, default=0, help="training sample, k-means and LSH hyperplanes")
    build.add_argument("--overwrite", action="store_true", help="replace the index already at --out (nothing else is ever replaced)")
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


def _run_index(args: argparse.Namespace) -> int:
    from tirg.features import dataset_for_cache, load_feature_cache
    from tirg.fileio import check_output_dir
    from tirg.index.build import build_index
    from tirg.index.folder import INDEX_OUTPUT, IndexConfig
    from tirg.index.opened import open_index

    if args.index_command == "build":
        settings = {name: getattr(args, name) for name in ("nlist", "m", "nbits", "tables", "probe_radius", "nprobe", "ef_search", "shard")}
        config = IndexConfig(kind=args.kind, train_size=args.train_size, shards=args.shards, seed=args.seed, **settings)
        check_output_dir(args.out, INDEX_OUTPUT, args.overwrite)  # before the cache is read
        out = build_index(load_feature_cache(args.cache), config, args.out, overwrite=args.overwrite)
        print(json.dumps({"out": str(out), **json.loads((out / "index.json").read_text())}, indent=2))
        return 0
    from tirg.compare.index_report import compare_index

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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tirg.errors import TirgError
    from tirg.hashing.cli import run_hash

    runners = {"data": _run_data, "train": _run_train, "eval": _run_eval, "demo": _run_demo, "hash": run_hash, "index": _run_index}
    runners.update({"import-checkpoint": _run_import_checkpoint, "export-checkpoint": _run_export_checkpoint, "retrieve": _run_retrieve})
    try:
        return runners[args.command](args)
    except (TirgError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"tirg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
