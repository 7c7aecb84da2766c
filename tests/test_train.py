import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tirg.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_model
from tirg.cli import main
from tirg.config import TrainConfig
from tirg.data import image_transform, load_dataset
from tirg.evaluate import evaluate
from tirg.models import build_model
from tirg.optimization import make_optimizer, set_learning_rate
from tirg.runtime import seed_everything
from tirg.text import Vocabulary
from tirg.training import train


def tiny_config(dataset_path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset_path=str(dataset_path), model="tirg", loss="soft_triplet", embed_dim=16, batch_size=4,
        num_iters=4, image_size=32, checkpoint_every=1000, log_every=1, device="cpu",
    )  # fmt: skip
    return replace(config, **changes)


def assert_same_weights(first: Path, second: Path) -> None:
    """Bit-identical model weights (and buffers) in two checkpoints."""
    a, b = load_checkpoint(first)["model"], load_checkpoint(second)["model"]
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


def test_resume_continues_exactly(tiny_css, tmp_path):
    # concat has dropout (the global generator) and soft_triplet draws triplets; validation runs at every iteration.
    config = tiny_config(tiny_css, model="concat", num_iters=4, val_fraction=0.25, eval_every=1, patience=0, image_size=64)
    seed_everything(0)
    straight = train(config, run_dir=tmp_path / "straight", evaluate_test=False)

    seed_everything(0)
    train(replace(config, num_iters=2), run_dir=tmp_path / "halves", evaluate_test=False)
    assert load_checkpoint(tmp_path / "halves" / CHECKPOINT_NAME)["iteration"] == 2
    seed_everything(123)  # resuming must not depend on the global state the new process starts with
    resumed = train(config, resume=tmp_path / "halves", evaluate_test=False)

    assert resumed.iteration == straight.iteration == 4
    assert_same_weights(straight.checkpoint, resumed.checkpoint)
    assert load_checkpoint(straight.checkpoint)["early_stopping"] == load_checkpoint(resumed.checkpoint)["early_stopping"]
    assert resumed.best_iteration == straight.best_iteration
    assert_same_weights(straight.best_checkpoint, resumed.best_checkpoint)


def test_evaluation_points_leave_the_training_trajectory_as_it_was(tiny_css, tmp_path):
    """The same held-out split, validated at every iteration or only at the end: the same weights at iteration 3."""
    config = tiny_config(tiny_css, model="concat", num_iters=3, val_fraction=0.25, patience=0, image_size=64)
    seed_everything(0)
    validated = train(replace(config, eval_every=1), run_dir=tmp_path / "validated", evaluate_test=False)
    seed_everything(0)
    at_end = train(replace(config, eval_every=0), run_dir=tmp_path / "at_end", evaluate_test=False)
    assert validated.points["iteration"].tolist() == [1, 2, 3] and at_end.points["iteration"].tolist() == [3]
    assert_same_weights(validated.checkpoint, at_end.checkpoint)
    # Test evaluations in the middle of a run (no validation) leave it as it was too.
    config = replace(config, val_fraction=0.0, num_iters=2)
    seed_everything(0)
    tested = train(replace(config, eval_every=1), run_dir=tmp_path / "tested")
    seed_everything(0)
    untested = train(replace(config, eval_every=0), run_dir=tmp_path / "untested", evaluate_test=False)
    assert tested.points["iteration"].tolist() == [1, 2] and untested.points.empty
    assert_same_weights(tested.checkpoint, untested.checkpoint)


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
        on_point=lambda points, train_loss: saved.append((points["iteration"].tolist(), train_loss["iteration"].tolist())),
    )
    assert saved == [([3], [3])] and load_checkpoint(result.checkpoint)["iteration"] == 3


# Each loader with one of its options, which validation must honour; batch sizes fit the fixtures.
# Images of 64 px: at 32 px and less, ResNet-18's last maps are 1x1 and batch norm over 2-4 of them
# blows the first step's gradients up to non-finite eval-mode features.
LOADER_RUNS = {
    "css": ("tiny_css", ["--batch_size", "4", "--val_fraction", "0.25"]),
    "fashion200k": ("fashion200k_tree", ["--batch_size", "4", "--val_fraction", "0.3", "--query_template", "change {} to {}"]),
    "mitstates": ("mitstates_tree", ["--batch_size", "4", "--val_fraction", "0.3", "--use_complete_text_query", "True"]),
    "fashionIQ": ("fashioniq_tree", ["--batch_size", "2", "--val_fraction", "0.5", "--caption_join", "plain"]),
}


@pytest.mark.parametrize("dataset", LOADER_RUNS)
def test_early_stopping_through_the_cli_on_every_loader(dataset, request, tmp_path, capsys):
    fixture, options = LOADER_RUNS[dataset]
    arguments = [
        "train", "--dataset", dataset, "--dataset_path", str(request.getfixturevalue(fixture)), "--num_iters", "3",
        "--eval_every", "1", "--patience", "1", "--embed_dim", "8", "--image_size", "64", "--log_dir", str(tmp_path),
        "--device", "cpu", *options,
    ]  # fmt: skip
    assert main(arguments) == 0
    summary = json.loads(capsys.readouterr().out)
    run = Path(summary["run_dir"])
    best = load_checkpoint(run / "best_checkpoint.pth")
    assert summary["best_checkpoint"] == str(run / "best_checkpoint.pth") and best["iteration"] == summary["best_iteration"]
    points = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [point["val_loss"] for point in points]
    assert best["early_stopping"]["best_loss"] == min(losses) == summary["best_val_loss"]
    # Patience 1: the run stops at the first point without a lower loss, or ends at 3.
    assert [point["iteration"] for point in points] == list(range(1, summary["iteration"] + 1))
    assert summary["stopped_early"] == (summary["iteration"] < 3) == (losses[-1] >= min(losses))
    # The test split is evaluated once, at the last point.
    assert [any(name.startswith("R@") for name in point) for point in points] == [False] * (len(points) - 1) + [True]


def interrupt(points, train_loss):
    raise KeyboardInterrupt


def test_resume_through_the_cli_continues_the_run_as_it_was(tiny_css, tmp_path, capsys):
    config = tiny_config(tiny_css, num_iters=4, checkpoint_every=2, eval_every=3)
    seed_everything(0)
    straight = train(config, run_dir=tmp_path / "straight")
    run = tmp_path / "run"
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):  # killed at iteration 3, after the checkpoint at 2
        train(config, run_dir=run, on_point=interrupt)
    assert load_checkpoint(run / CHECKPOINT_NAME)["iteration"] == 2

    assert main(["train", "--resume", str(run)]) == 0  # no other flag: the saved settings, to the saved num_iters
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["iteration"] == 4 and resumed["R@1"] == pytest.approx(straight.metrics["R@1"])
    assert_same_weights(straight.checkpoint, run / CHECKPOINT_NAME)
    assert main(["train", "--resume", str(run), "--num_iters", "5", "--device", "cpu", "--loader_num_workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration"] == 5
    assert json.loads((run / "config.json").read_text())["num_iters"] == 5

    # Any other training flag is refused, also when given its default value.
    assert main(["train", "--resume", str(run), "--seed", "0", "--learning_rate", "0.1", "--use_bert", "False"]) == 2
    error = capsys.readouterr().err
    assert (
        "--learning_rate, --seed, --use_bert cannot change" in error
        and "only --device, --loader_num_workers, --cache_images, --channels_last, --num_iters" in error
    )
    # A checkpoint whose model differs from the run's config.json is refused.
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "model": "concat", "embed_dim": 32}))
    assert main(["train", "--resume", str(run)]) == 2
    error = capsys.readouterr().err
    assert "model: 'tirg' in the checkpoint, 'concat' in config.json" in error and "embed_dim: 16 in the checkpoint, 32" in error
