"""ComposeAE's models on the generated CSS data at the demo's budget (250 iterations, lr 0.01,
batch 32, batch_based_classification, seed 0), one run after another.

    python benchmarks/composeae_css.py                     # data/css, results/composeae
    python benchmarks/composeae_css.py --num_iters 20      # a quick look

Writes results/composeae/{recall.csv, recall.md} and each run under results/composeae/runs/.
The MiniLM runs share one on-disk text embedding cache (results/composeae/text_cache).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from tirg.config import TrainConfig
from tirg.demo import DemoConfig, recall_markdown
from tirg.fileio import atomic_write_text
from tirg.runtime import seed_everything
from tirg.training import train

# (row label, --model, --text_encoder)
RUNS = (
    ("tirg (LSTM)", "tirg", "lstm"),
    ("tirg (MiniLM)", "tirg", "minilm"),
    ("ComposeAE (MiniLM)", "composeAE", "minilm"),
    ("RealSpaceConcatAE (MiniLM)", "RealSpaceConcatAE", "minilm"),
)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    demo = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=demo.data_dir)
    parser.add_argument("--results", type=Path, default=Path("results/composeae"))
    parser.add_argument("--num_iters", type=int, default=demo.num_iters)
    parser.add_argument("--seed", type=int, default=demo.seed)
    parser.add_argument("--device", default=demo.device)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rows = []
    for label, model, text_encoder in RUNS:
        seed_everything(args.seed)
        config = TrainConfig(
            dataset="css", dataset_path=args.data, model=model, text_encoder=text_encoder, loss=demo.loss,
            num_iters=args.num_iters, batch_size=demo.batch_size, learning_rate=demo.learning_rate, seed=args.seed,
            device=args.device, checkpoint_every=args.num_iters, text_embedding_cache=str(args.results / "text_cache"),
        )  # fmt: skip
        started = time.perf_counter()
        result = train(config, run_dir=args.results / "runs" / f"{model}_{text_encoder}")
        seconds = round(time.perf_counter() - started, 1)
        rows.append({"model": label, **result.metrics, "train_seconds": seconds})
        print(f"{label}: {result.metrics} ({seconds} s)", flush=True)
    table = pd.DataFrame(rows)
    atomic_write_text(args.results / "recall.csv", table.to_csv(index=False))
    atomic_write_text(args.results / "recall.md", recall_markdown(table))
    print(recall_markdown(table))
    return table


if __name__ == "__main__":
    main()
