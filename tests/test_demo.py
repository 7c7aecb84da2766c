import json
from dataclasses import replace

import pandas as pd
import pytest
from conftest import root_script

from tirg.data import CSSGeneratorConfig
from tirg.demo import DemoConfig, run_demo
from tirg.errors import OutputError


def test_demo_and_scripts_run_end_to_end_at_smoke_size(tmp_path, capsys):
    config = DemoConfig(
        data_dir=str(tmp_path / "css"), results_dir=str(tmp_path / "results"), images_dir=str(tmp_path / "images"),
        models=("tirg", "imgonly"), num_iters=2, batch_size=8, lsh_repeats=2, lsh_queries=20,
        data=CSSGeneratorConfig(seed=1, n_train=60, n_test=120), device="cpu",
    )  # fmt: skip
    table = run_demo(config)
    assert table["model"].tolist() == ["tirg", "imgonly"]
    assert pd.read_csv(tmp_path / "results" / "recall.csv")["R@1"].tolist() == table["R@1"].tolist()
    for figure in ("recall_per_model", "retrieval_example", "lsh_recall_vs_time", "lsh_recall_at_k"):
        assert (tmp_path / "images" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    within = json.loads((tmp_path / "results" / "lsh" / "within_1_point.json").read_text())
    assert 0.0 <= within["exact_recall@100"] <= 1.0

    checkpoint = tmp_path / "results" / "runs" / "tirg" / "latest_checkpoint.pth"
    assert root_script("compute_and_save").main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    lsh = root_script("lsh")
    arguments = ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "lsh"), "--repeats", "1", "--queries", "10", "--no-faiss"]
    assert lsh.main(arguments) == 0
    assert "No hashing (exact)" in capsys.readouterr().out
    assert lsh.main(["--cache", str(tmp_path / "nowhere")]) == 2
    assert "not a feature cache" in capsys.readouterr().err

    # `make demo` twice: the second run (--overwrite) replaces the demo's own results and figures; without it, refused.
    again = replace(config, models=("imgonly",), overwrite=True)
    with pytest.raises(OutputError, match="already holds a demo results folder; pass --overwrite"):
        run_demo(replace(again, overwrite=False))
    assert run_demo(again)["model"].tolist() == ["imgonly"]
    assert pd.read_csv(tmp_path / "results" / "recall.csv")["model"].tolist() == ["imgonly"]
    assert not (tmp_path / "results" / "runs" / "tirg").exists() and not (tmp_path / "results" / "features").exists()
