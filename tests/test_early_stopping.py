from pathlib import Path

import pytest
import torch

from tirg import early_stopping
from tirg.data import image_transform, load_dataset
from tirg.early_stopping import EarlyStoppingConfig, ScalarHistory, split_validation, train_with_early_stopping, validation_loss
from tirg.models import build_model
from tirg.runtime import seeded_generator
from tirg.text import Vocabulary
from tirg.train import TrainConfig, TrainResult


def test_validation_split_holds_out_whole_sources_reproducibly(tiny_css):
    trainset = load_dataset("css", tiny_css, "train")
    training, validation = split_validation(trainset, 0.25, seed=5)
    sources = {p.source for p in trainset.pairs}
    held = {p.source for p in validation.pairs}
    assert held.isdisjoint({p.source for p in training.pairs})
    assert len(held) == round(0.25 * len(sources))
    assert sorted(training.pairs + validation.pairs, key=repr) == sorted(trainset.pairs, key=repr)
    assert split_validation(trainset, 0.25, seed=5)[1].pairs == validation.pairs
    assert split_validation(trainset, 0.25, seed=6)[1].pairs != validation.pairs
    assert len(trainset.pairs) == len(training.pairs) + len(validation.pairs)  # the input is not modified
    with pytest.raises(ValueError, match="val_fraction=0.001"):
        split_validation(trainset, 0.001, seed=0)


def test_validation_loss_is_the_eval_mode_loss_over_fixed_batches(tiny_css):
    torch.manual_seed(0)
    dataset = load_dataset("css", tiny_css, "train")
    dataset.pairs = dataset.pairs[:7]  # batches of 3: [0:3], [3:6]; the last batch of one pair is skipped
    model = build_model("tirg", Vocabulary.build(dataset.texts()), embed_dim=16)
    model.train()
    transform = image_transform(None)
    value = validation_loss(model, dataset, transform, "soft_triplet", batch_size=3, seed=4)
    assert model.training
    model.eval()
    expected = 0.0
    with torch.no_grad():
        for index, start in enumerate((0, 3)):
            pairs = dataset.pairs[start : start + 3]
            sources = torch.stack([transform(dataset.load_image(p.source)) for p in pairs])
            targets = torch.stack([transform(dataset.load_image(p.target)) for p in pairs])
            expected += 3 * model.compute_loss(sources, [p.text for p in pairs], targets, "soft_triplet", seeded_generator(4, index)).item()
    assert value == pytest.approx(expected / 6, rel=1e-5)
    model.train()
    assert validation_loss(model, dataset, transform, "soft_triplet", batch_size=3, seed=4) == pytest.approx(value, rel=1e-6)


def test_stops_after_patience_points_and_keeps_the_best_checkpoint(tiny_css, tmp_path, monkeypatch):
    """train() and the validation loss are scripted: this tests the stopping rule and the checkpoint kept."""
    losses = iter([3.0, 2.0, 2.5, 1.998, 2.2, 2.3, 2.4, 0.1])
    chunks = []

    def fake_train(config, run_dir, resume, writer, progress, trainset, testset):
        chunks.append((config.num_iters, resume))
        checkpoint = Path(run_dir) / "latest_checkpoint.pth"
        checkpoint.write_text(f"weights at {config.num_iters}")
        writer.add_scalar(f"train/{config.loss}", 1.0 / config.num_iters, config.num_iters)
        return TrainResult(Path(run_dir), checkpoint, config.num_iters, {"R@1": config.num_iters / 100})

    monkeypatch.setattr(early_stopping, "train", fake_train)
    monkeypatch.setattr(early_stopping, "load_model", lambda path, device: (None, None))
    monkeypatch.setattr(early_stopping, "validation_loss", lambda *args: next(losses))
    seen = []
    config = TrainConfig(dataset_path=str(tiny_css), num_iters=100, device="cpu")
    result = train_with_early_stopping(
        config, EarlyStoppingConfig(eval_every=10, patience=3, min_delta=0.005), run_dir=tmp_path,
        on_point=lambda points, train_loss: seen.append(len(points)),
    )  # fmt: skip
    # 1.998 is not better than 2.0 by more than min_delta; three points without improvement after 20.
    assert result.points["val_loss"].tolist() == [3.0, 2.0, 2.5, 1.998, 2.2]
    assert result.best_iteration == 20 and result.best_val_loss == 2.0 and result.stopped_early
    assert (tmp_path / "best_checkpoint.pth").read_text() == "weights at 20"
    assert chunks == [(10, None), (20, tmp_path / "latest_checkpoint.pth"), (30, tmp_path / "latest_checkpoint.pth"),
                      (40, tmp_path / "latest_checkpoint.pth"), (50, tmp_path / "latest_checkpoint.pth")]  # fmt: skip
    assert seen == [1, 2, 3, 4, 5]
    assert result.train_loss["iteration"].tolist() == [10, 20, 30, 40, 50]
    assert result.points["R@1"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_last_chunk_ends_at_num_iters_and_is_not_an_early_stop(tiny_css, tmp_path, monkeypatch):
    ends = []

    def fake_train(config, run_dir, resume, writer, progress, trainset, testset):
        ends.append(config.num_iters)
        checkpoint = Path(run_dir) / "latest_checkpoint.pth"
        checkpoint.write_text(str(config.num_iters))
        return TrainResult(Path(run_dir), checkpoint, config.num_iters, {})

    monkeypatch.setattr(early_stopping, "train", fake_train)
    monkeypatch.setattr(early_stopping, "load_model", lambda path, device: (None, None))
    monkeypatch.setattr(early_stopping, "validation_loss", lambda *args: 1.0)
    config = TrainConfig(dataset_path=str(tiny_css), num_iters=25, device="cpu")
    result = train_with_early_stopping(config, EarlyStoppingConfig(eval_every=10, patience=2), run_dir=tmp_path)
    # Two points without improvement after 10 end at 25, which is num_iters: the run finished, it did not stop early.
    assert ends == [10, 20, 25]
    assert result.best_iteration == 10 and not result.stopped_early


def test_scalar_history_records_and_forwards():
    class Writer:
        def __init__(self):
            self.calls = []

        def add_scalar(self, tag, value, step):
            self.calls.append((tag, value, step))

    writer = Writer()
    history = ScalarHistory(writer)
    history.add_scalar("train/loss", 2.0, 1)
    history.add_scalar("validation/loss", 3.0, 1)
    history.add_scalar("train/loss", 1.5, 2)
    assert history.series("train/loss").values.tolist() == [[1, 2.0], [2, 1.5]]
    assert writer.calls == [("train/loss", 2.0, 1), ("validation/loss", 3.0, 1), ("train/loss", 1.5, 2)]


def test_config_is_checked():
    with pytest.raises(ValueError, match="patience=0"):
        EarlyStoppingConfig(patience=0)
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        EarlyStoppingConfig(val_fraction=1.0)
