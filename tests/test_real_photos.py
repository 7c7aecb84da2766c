"""Real bird photos (CUB-50) in Fashion200k's format through the composed-retrieval user path, pretrained backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import root_script
from fixture_trees import write_cub_fashion200k

from tirg.cli import main
from tirg.data import load_dataset
from tirg.models.backbones import offline_imagenet_available


@pytest.fixture(scope="module")
def birds(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cub_fashion200k(
        tmp_path_factory.mktemp("birds") / "Fashion200k", shared_data / "cub50" / "CUB_200_2011", per_class=16, size=64
    )  # lsh.py needs a gallery over 100


def test_bird_captions_mine_real_one_word_queries(birds: Path) -> None:
    train = load_dataset("fashion200k", birds, "train")
    assert "laysan albatross" in train.captions and "least auklet" in train.captions
    texts = set(train.texts())
    assert {"laysan albatross", "rusty blackbird"} <= texts
    test = load_dataset("fashion200k", birds, "test")
    queries = {(test.captions[q.source], q.target_caption, q.text) for q in test.queries}
    assert ("laysan albatross", "sooty albatross", "replace laysan with sooty") in queries
    assert all(len(set(s.split()) ^ set(t.split())) == 2 for s, t, _ in queries)  # exactly one word differs


# tirg with the backbone frozen (its features cached once), concat fine-tuned end to end.
@pytest.mark.parametrize(("model", "freeze"), [("tirg", True), ("concat", False)])
def test_pretrained_backbone_through_check_train_eval_cache_and_lsh(
    birds: Path, model: str, freeze: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not offline_imagenet_available():
        pytest.skip("the 'pretrained' extra is not installed")
    assert main(["data", "check", "--dataset", "fashion200k", "--dataset_path", str(birds)]) == 0
    capsys.readouterr()
    arguments = [
        "train", "--dataset", "fashion200k", "--dataset_path", str(birds), "--model", model, "--num_iters", "2", "--batch_size", "4",
        "--embed_dim", "16", "--image_size", "64", "--backbone", "efficientnet_lite0", "--backbone_weights", "imagenet",
        "--log_dir", str(tmp_path), "--device", "cpu", *(["--freeze_backbone"] if freeze else []),
    ]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    checkpoint = Path(result["run_dir"]) / "latest_checkpoint.pth"
    assert (Path(result["run_dir"]) / "backbone_features" / "train" / "manifest.json").is_file() == freeze
    assert main(["eval", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["R@1"] == pytest.approx(result["R@1"])
    if model != "tirg":
        return  # the cache and LSH steps do not depend on the model; run them once
    cache, out = tmp_path / "features", tmp_path / "lsh"
    assert root_script("compute_and_save").main(["--checkpoint", str(checkpoint), "--out", str(cache), "--device", "cpu"]) == 0
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["num_queries"] == len(load_dataset("fashion200k", birds, "test").queries) > 101
    assert root_script("lsh").main(["--cache", str(cache), "--out", str(out), "--repeats", "1", "--queries", "5", "--no-faiss"]) == 0
    assert (out / "summary.csv").is_file()
