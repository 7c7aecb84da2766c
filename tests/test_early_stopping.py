"""Early stopping inside train(): held-out sources, the eval-mode validation loss, patience, the best checkpoint."""

import importlib
import json
from dataclasses import replace

import pytest
import torch

from tirg.checkpoint import load_checkpoint
from tirg.config import TrainConfig
from tirg.data import PairView, image_transform, load_dataset
from tirg.early_stopping import EarlyStopping, ItemView, hold_out, validation_loss
from tirg.models import build_model
from tirg.runtime import Stream, seeded_generator
from tirg.text import Vocabulary
from tirg.training import train

train_module = importlib.import_module("tirg.training")


def tiny_config(dataset_path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset_path=str(dataset_path), model="tirg", loss="soft_triplet", embed_dim=8, batch_size=4, num_iters=10,
        image_size=16, checkpoint_every=0, log_every=1, eval_every=1, val_fraction=0.25, device="cpu",
    )  # fmt: skip
    return replace(config, **changes)


@pytest.mark.parametrize("name", ["css", "fashion200k"])
def test_hold_out_keeps_whole_sources_reproducibly(name, tiny_css, fashion200k_tree):
    # Fashion200k draws its pairs on the fly and leaves `pairs` empty: the split goes through training_sources().
    sources = load_dataset(name, {"css": tiny_css, "fashion200k": fashion200k_tree}[name], "train").training_sources()
    split = hold_out(sources, 0.3, seed=5, where=name)
    held = {sources[item] for item in split.validation}
    assert held.isdisjoint(sources[item] for item in split.training)
    assert sorted(split.training + split.validation) == list(range(len(sources)))
    assert len(held) == round(0.3 * len(set(sources)))
    assert hold_out(sources, 0.3, seed=5, where=name) == split
    assert hold_out(sources, 0.3, seed=6, where=name) != split
    with pytest.raises(ValueError, match=f"--val_fraction 0.001 of the {len(set(sources))} training source images of {name} holds out 0"):
        hold_out(sources, 0.001, seed=0, where=name)


def test_validation_loss_is_the_weighted_eval_mode_loss_over_fixed_batches(tiny_css):
    torch.manual_seed(0)
    dataset = load_dataset("css", tiny_css, "train")
    model = build_model("tirg", Vocabulary.build(dataset.texts()), embed_dim=16)
    model.train()
    transform = image_transform(None)
    items = [3, 0, 5, 9, 1, 2, 7]  # batches of 3: items [3 0 5], [9 1 2]; the last batch of one pair is skipped
    pairs = ItemView(PairView(dataset, transform), items)
    value = validation_loss(model, pairs, "soft_triplet", {"base": 2.0}, batch_size=3, seed=4)
    assert model.training
    model.eval()
    expected = 0.0
    with torch.no_grad():
        for index, batch in enumerate((items[0:3], items[3:6])):
            chosen = [dataset.pairs[item] for item in batch]
            sources = torch.stack([transform(dataset.load_image(p.source)) for p in chosen])
            targets = torch.stack([transform(dataset.load_image(p.target)) for p in chosen])
            texts = [p.text for p in chosen]
            loss = model.compute_loss(sources, texts, targets, "soft_triplet", seeded_generator(4, index, Stream.VALIDATION))
            expected += 3 * 2.0 * loss.item()
    assert value == pytest.approx(expected / 6, rel=1e-5)
    model.train()
    assert validation_loss(model, pairs, "soft_triplet", {"base": 2.0}, batch_size=3, seed=4) == pytest.approx(value, rel=1e-6)


def test_stops_after_patience_points_keeps_the_best_checkpoint_and_tests_once(tiny_css, tmp_path, monkeypatch):
    """The validation losses are scripted: this tests the stopping rule, the checkpoint kept and the test evaluations."""
    losses = iter([3.0, 2.0, 2.5, 2.0, 2.2, 0.1])
    tested = []
    monkeypatch.setattr(train_module, "validation_loss", lambda *args: next(losses))
    monkeypatch.setattr(
        train_module, "evaluate", lambda model, testset, *args, **kwargs: tested.append(len(testset.queries)) or {"R@1": 0.25}
    )
    seen = []
    config = tiny_config(tiny_css, patience=3)
    result = train(config, run_dir=tmp_path, on_point=lambda points, train_loss: seen.append((len(points), len(train_loss))))
    # 2.0 again is no improvement: three points without a lower loss after iteration 2 stop the run at 5.
    assert result.points["val_loss"].tolist() == [3.0, 2.0, 2.5, 2.0, 2.2]
    assert result.points["improved"].tolist() == [True, True, False, False, False]
    assert result.best_iteration == 2 and result.best_val_loss == 2.0 and result.stopped_early and result.iteration == 5
    assert load_checkpoint(result.best_checkpoint)["iteration"] == 2 and result.best_checkpoint == tmp_path / "best_checkpoint.pth"
    assert load_checkpoint(result.checkpoint)["iteration"] == 5
    # The test split is evaluated once, where training stopped.
    assert len(tested) == 1 and result.metrics == {"R@1": 0.25} and result.points["R@1"].isna().tolist() == [True] * 4 + [False]
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    assert [json.loads(line)["iteration"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]

    # The stop is part of the run's state: resuming it trains and evaluates nothing more.
    again = train(config, resume=tmp_path)
    assert again.iteration == 5 and again.points.empty and len(tested) == 1 and again.best_iteration == 2


def test_the_last_point_is_at_num_iters_and_is_not_an_early_stop(tiny_css, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "validation_loss", lambda *args: 1.0)
    result = train(tiny_config(tiny_css, num_iters=5, eval_every=2, patience=2), run_dir=tmp_path, evaluate_test=False)
    # Points at 2, 4 and the end; two points without improvement after 2 end at 5, which is num_iters.
    assert result.points["iteration"].tolist() == [2, 4, 5]
    assert result.best_iteration == 2 and not result.stopped_early and result.iteration == 5
    assert "R@1" not in result.points and result.metrics == {}


def test_validation_pairs_follow_the_runs_data_set_options_and_loss_weights(fashion200k_tree, mitstates_tree, tmp_path, monkeypatch):
    seen = {}

    def record(model, pairs, loss, weights, *args):
        seen.update(texts=[pairs[i][1] for i in range(len(pairs))], weights=dict(weights))
        return 1.0

    monkeypatch.setattr(train_module, "validation_loss", record)
    config = tiny_config(
        fashion200k_tree, dataset="fashion200k", category_to_train="dress,pants", query_template="change {} to {}",
        val_fraction=0.4, num_iters=1, image_reconstruction_weight=0.3,
    )  # fmt: skip
    train(config, run_dir=tmp_path / "f200k", evaluate_test=False)
    # dress and pants hold 8 modifiable images; 3 are held out, each one validation item.
    assert len(seen["texts"]) == 3 and all(text.startswith("change ") and " to " in text for text in seen["texts"])
    assert seen["weights"] == config.loss_weights() and seen["weights"]["image_reconstruction"] == 0.3

    config = tiny_config(mitstates_tree, dataset="mitstates", use_complete_text_query=True, val_fraction=0.3, num_iters=1)
    train(config, run_dir=tmp_path / "mit", evaluate_test=False)
    # Complete-text queries: the text is the target's caption "<adjective> <noun>", for both draws of 2 held-out images.
    assert len(seen["texts"]) == 4 and all(text.split()[1] in ("apple", "car") for text in seen["texts"])


def test_early_stopping_state():
    stopping = EarlyStopping(patience=2)
    assert [stopping.update(loss, i) for i, loss in enumerate([2.0, 1.0, 1.0, 0.5, 0.7, 0.9], start=1)] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    assert stopping.stopped and stopping.best_iteration == 4 and stopping.best_loss == 0.5
    restored = EarlyStopping(patience=2)
    restored.load_state_dict(stopping.state_dict())
    assert restored == stopping
    never = EarlyStopping(patience=0)
    for i in range(10):
        never.update(1.0, i)
    assert not never.stopped
