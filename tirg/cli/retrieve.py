"""`tirg retrieve`: one query (a test query, or any photo plus a text) against a gallery."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from tirg.cli.runner import Runner

FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def register(commands: argparse._SubParsersAction) -> dict[str, Runner]:
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
    return {"retrieve": run_retrieve}


def _figure_path(args: argparse.Namespace) -> Path | None:
    """--out, refused before any work when it is not a figure file name or would replace a file without --overwrite."""
    if not args.out:
        return None
    out = Path(args.out)
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"--out {out}: expected a .png, .jpg, .pdf or .svg file name")
    if out.is_dir() or (out.exists() and not args.overwrite):
        raise FileExistsError(f"--out {out} already exists; choose another name, or pass --overwrite to replace the file")
    return out


def run_retrieve(args: argparse.Namespace) -> int:
    from tirg.plots.retrieval_figures import retrieval_figure
    from tirg.plots.save import save_figure
    from tirg.retrieval import RetrieveConfig, retrieve

    out = _figure_path(args)
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
