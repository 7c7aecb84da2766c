"""Precompute and cache the features of a data set split with a trained checkpoint.

    python compute_and_save.py --checkpoint runs/X/latest_checkpoint.pth --out features/css_test

Writes L2-normalised query and gallery features (.npy), their metadata (CSV) and a
manifest.json; see tirg/features.py for the layout.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tirg.errors import TirgError
from tirg.features import compute_and_save
from tirg.runtime import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a tirg checkpoint (latest_checkpoint.pth)")
    parser.add_argument("--out", required=True, help="cache folder to write: absent, empty, or an earlier cache (with --overwrite)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the feature cache already at --out (nothing else is ever replaced)"
    )
    parser.add_argument("--dataset_path", "--dataset-path", dest="dataset_path", help="default: the checkpoint's")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--loader_num_workers", "--num-workers", dest="num_workers", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = compute_and_save(
            args.checkpoint, args.out, args.dataset_path, args.split, args.batch_size, args.num_workers,
            resolve_device(args.device), progress=True, overwrite=args.overwrite,
        )  # fmt: skip
    except (TirgError, ValueError) as error:
        print(f"compute_and_save.py: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
