import json
from dataclasses import replace

import pytest
import torch

from tirg.checkpoint import load_checkpoint, load_model
from tirg.cli import main
from tirg.data import image_transform, load_dataset
from tirg.evaluate import evaluate
from tirg.runtime import seed_everything
from tirg.train import CHECKPOINT_NAME, TrainConfig, make_optimizer, set_learning_rate, train
from tirg.models import build_model
from tirg.text import Vocabulary


def tiny_config(dataset_path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset_path=str(dataset_path), model="tirg", loss="soft_triplet", embed_dim=16, batch_size=4,
        num_iters=4, image_size=32, checkpoint_every=1000, log_every=1, device="cpu",
    )  # fmt: skip
    return replace(config, **changes)


def test_resume_continues_exactly(tiny_css, tmp_path):
    config = tiny_config(tiny_css, num_iters=4)
    seed_everything(0)
    straight = train(config, run_dir=tmp_path / "straight")

    seed_everything(0)
    train(replace(config, num_iters=2), run_dir=tmp_path / "halves")
    assert load_checkpoint(tmp_path / "halves" / CHECKPOINT_NAME)["iteration"] == 2
    seed_everything(123)  # resuming must not depend on the global state the new process starts with
    resumed = train(config, resume=tmp_path / "halves")

    assert resumed.iteration == straight.iteration == 4
    first = load_checkpoint(straight.checkpoint)["model"]
    second = load_checkpoint(resumed.checkpoint)["model"]
    for name, value in first.items():
        assert torch.allclose(value.float(), second[name].float(), atol=1e-6), name


def test_three_parameter_groups_and_step_decay():
    model = build_model("tirg", Vocabulary.build(["a"]), embed_dim=8)
    config = TrainConfig(learning_rate=0.5, learning_rate_decay_frequency=10, backbone_weights="given.pth")
    optimizer = make_optimizer(model, config)
    fc, body, rest = optimizer.param_groups
    assert {id(p) for p in fc["params"]} == {id(p) for p in model.img_model.fc.parameters()}
    assert len(fc["params"]) + len(body["params"]) == len(list(model.img_model.parameters()))
    assert len(fc["params"]) + len(body["params"]) + len(rest["params"]) == len(list(model.parameters()))
    set_learning_rate(optimizer, config, 25)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.0005, 0.005])
    # From random init the whole backbone learns at the full rate (TIRG's CSS setting).
    assert make_optimizer(model, replace(config, backbone_weights=None)).param_groups[1]["lr"] == 0.5


def test_train_then_eval_end_to_end_through_the_cli(tiny_css, tmp_path, capsys):
    arguments = [
        "train", "--dataset", "css", "--dataset_path", str(tiny_css), "--model", "concat",
        "--loss", "batch_based_classification", "--num_iters", "6", "--batch_size", "4", "--embed_dim", "16",
        "--image_size", "32", "--log_dir", str(tmp_path / "runs"), "--comment", "_smoke", "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["iteration"] == 6 and trained["run_dir"].endswith("_smoke")
    assert all(0.0 <= trained[f"R@{k}"] <= 1.0 for k in (1, 5, 10))
    assert trained["R@1"] <= trained["R@5"] <= trained["R@10"]

    checkpoint = f"{trained['run_dir']}/{CHECKPOINT_NAME}"
    assert main(["eval", "--checkpoint", checkpoint, "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for k in (1, 5, 10):
        assert evaluated[f"R@{k}"] == pytest.approx(trained[f"R@{k}"])

    # The library path gives the same numbers as the CLI.
    model, _ = load_model(checkpoint)
    direct = evaluate(model, load_dataset("css", tiny_css, "test"), image_transform(32))
    assert direct["R@1"] == pytest.approx(evaluated["R@1"])


def test_pretrained_model_starts_a_new_run_from_its_weights(tiny_css, tmp_path):
    seed_everything(0)
    first = train(tiny_config(tiny_css, num_iters=2), run_dir=tmp_path / "first")
    second = train(tiny_config(tiny_css, num_iters=1, pretrained_model=str(first.checkpoint)), run_dir=tmp_path / "second")
    assert load_checkpoint(second.checkpoint)["iteration"] == 1
    with pytest.raises(ValueError, match="holds a 'tirg' model, not 'concat'"):
        train(tiny_config(tiny_css, model="concat", pretrained_model=str(first.checkpoint)), run_dir=tmp_path / "third")


def test_cli_reports_bad_input_naming_the_argument(tmp_path, capsys):
    assert main(["train", "--dataset_path", str(tmp_path / "missing"), "--log_dir", str(tmp_path)]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert main(["train", "--dataset", "imagenet", "--log_dir", str(tmp_path)]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_zero_intervals_mean_only_at_the_end(tiny_css, tmp_path):
    saved = []
    result = train(
        tiny_config(tiny_css, num_iters=3, checkpoint_every=0, log_every=0, eval_every=0),
        run_dir=tmp_path / "run",
        on_evaluate=lambda iteration, metrics: saved.append(iteration),
    )
    assert saved == [3] and load_checkpoint(result.checkpoint)["iteration"] == 3
