"""MIT-States loader on a fixture tree in the real layout (images/<adj noun>/*.jpg), counts worked out by hand."""

import json
from pathlib import Path

import numpy as np
import pytest
from fixture_trees import write_mitstates

from tirg.cli import main
from tirg.data import MITStatesDataset, PairView, SourceGroupedBatchSampler, default_pairs_per_source, image_transform, load_dataset
from tirg.errors import DataError


@pytest.fixture(scope="module")
def mit(tmp_path_factory) -> Path:
    return write_mitstates(tmp_path_factory.mktemp("mit") / "mitstates")


def test_noun_disjoint_split_and_counts(mit):
    train, test = MITStatesDataset(mit, "train"), MITStatesDataset(mit, "test")
    assert len(train) == 7 and len(test) == 6
    assert set(train.nouns) == {"apple", "car"} and set(test.nouns) == {"glass", "sand"}
    assert train.captions[:4] == ["new car", "new car", "old car", "ripe apple"]  # sorted folders
    assert train.texts() == train.captions
    assert train.summary() == {"images": 7, "training items": 14, "queries": 0, "nouns": 2, "adjective-noun pairs": 5}
    assert default_pairs_per_source("MITStates") == 2


def test_test_queries_every_other_adjective_of_the_noun(mit):
    test = load_dataset("mitstates", mit, "test")
    # Images: broken glass x2, clear glass, dry sand, fine sand, wet sand.
    assert [(q.source, q.text, q.target_caption) for q in test.queries] == [
        (0, "clear", "clear glass"), (1, "clear", "clear glass"), (2, "broken", "broken glass"),
        (3, "fine", "fine sand"), (3, "wet", "wet sand"), (4, "dry", "dry sand"), (4, "wet", "wet sand"),
        (5, "dry", "dry sand"), (5, "fine", "fine sand"),
    ]  # fmt: skip


def test_two_draws_per_source_with_different_adjectives(mit):
    train = MITStatesDataset(mit, "train")
    ripe = train.captions.index("ripe apple")
    texts = set()
    for seed in range(100):
        first = train.training_pair(2 * ripe, np.random.default_rng(seed))
        second = train.training_pair(2 * ripe + 1, np.random.default_rng(seed))
        assert first.source == second.source == ripe and first.text != second.text
        for pair in (first, second):
            assert train.captions[pair.target] == f"{pair.text} apple"
        texts |= {first.text, second.text}
    # Any adjective of the noun, the source's own included, as in the original.
    assert texts == {"ripe", "rotten", "sliced"}


def test_grouped_batches_hold_both_draws_of_each_source(mit):
    train = MITStatesDataset(mit, "train")
    view = PairView(train, image_transform(8), seed=0)
    sampler = SourceGroupedBatchSampler(train.training_sources(), batch_size=4, seed=0, per_source=2)
    for iteration in range(5):
        batch = sampler.batch(iteration)
        items = [view[(item, iteration)] for item in batch]
        for a, b in ((0, 1), (2, 3)):
            assert view.sources[batch[a]] == view.sources[batch[b]] and items[a][1] != items[b][1]


def test_adjective_and_noun_recall_on_constructed_rankings(mit):
    test = MITStatesDataset(mit, "test")
    neighbors = np.full((9, 2), -1)
    neighbors[0] = [1, 2]  # target clear glass: broken glass (noun only), then clear glass
    neighbors[2] = [0, 5]  # target broken glass: hit at 1
    neighbors[3] = [5, 4]  # target fine sand: wet sand (noun only), then fine sand
    metrics = test.retrieval_metrics(neighbors, ks=(1, 2))
    assert metrics == pytest.approx({"R@1": 1 / 9, "R@2": 3 / 9, "R@1_adj": 1 / 9, "R@2_adj": 3 / 9, "R@1_noun": 3 / 9, "R@2_noun": 3 / 9})


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        MITStatesDataset(tmp_path, "train")
    write_mitstates(tmp_path / "single", {"ripe apple": 1, "old car": 1, "new car": 1})
    with pytest.raises(DataError, match=r"single adjective cannot be modified: \['apple'\]"):
        MITStatesDataset(tmp_path / "single", "train")
    write_mitstates(tmp_path / "three", {"ripe apple": 1, "very ripe apple": 1})
    with pytest.raises(DataError, match="very ripe apple: expected a folder named '<adjective> <noun>'"):
        MITStatesDataset(tmp_path / "three", "train")
    with pytest.raises(DataError, match="no test images"):
        MITStatesDataset(tmp_path / "single", "test")
    with pytest.raises(DataError, match="splits"):
        MITStatesDataset(tmp_path / "single", "val")


def test_train_through_the_cli_reports_adjective_and_noun_recall(mit, tmp_path, capsys):
    arguments = [
        "train", "--dataset", "mitstates", "--dataset_path", str(mit), "--model", "tirg", "--loss", "soft_triplet",
        "--num_iters", "2", "--batch_size", "4", "--embed_dim", "8", "--image_size", "32",
        "--log_dir", str(tmp_path), "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"R@1", "R@1_adj", "R@1_noun", "R@5_noun"} <= set(result)
