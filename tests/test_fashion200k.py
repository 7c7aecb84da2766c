"""Fashion200k loader on a fixture tree in the real format, with counts, mining and texts worked out by hand."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fixture_trees import LABELS, write_fashion200k

from tirg.cli import main
from tirg.data import Fashion200kDataset, PairView, image_transform, load_dataset
from tirg.data.fashion200k import different_words, mine_parents, parent_caption
from tirg.errors import DataError


@pytest.fixture(scope="module")
def f200k(tmp_path_factory) -> Path:
    return write_fashion200k(tmp_path_factory.mktemp("f200k") / "Fashion200k")


def test_caption_mining_counts_and_quirks(f200k):
    train = Fashion200kDataset(f200k, "train")
    # Sorted label files: dress, pants, skirt, top.
    assert len(train) == 14 and train.label_files[0].name == "dress_train_detect_all.txt"
    assert train.captions[4:6] == ["white dressdotmark", "pink dressdotmark"]
    assert "black andmark white top" in train.captions
    assert len(train.unique_captions) == 13
    modifiable = {train.captions[i] for i in train.modifiable}
    # "red shredded top" minus "red" is "shded top" (the substring also leaves "shredded"), so the
    # two shredded tops are no siblings, exactly as in the original; "black and black skirt" loses
    # both "black"s and meets "white and white skirt" under "and skirt".
    assert modifiable == {
        "black mini dress", "blue mini dress", "black maxi dress", "white dressdotmark", "pink dressdotmark",
        "black and black skirt", "white and white skirt", "green park skinny pants", "blue park skinny pants",
    }  # fmt: skip
    assert len(train.modifiable) == 10  # "black mini dress" has two images
    assert train.summary() == {"images": 14, "training items": 10, "queries": 0, "unique captions": 13, "modifiable images": 10}


def test_mining_helpers_by_hand():
    assert parent_caption("red shredded top", "red") == "shded top"
    assert parent_caption("black and black skirt", "black") == "and skirt"
    assert parent_caption("a b b c", "b") == "a  c"  # three spaces collapse only once, as in the original
    assert different_words("red long skirt", "blue short skirt") == ("red", "blue")
    assert different_words("navy wool coat", "wool navy coat") == ("coat", "coat")
    assert mine_parents(["black mini dress", "blue mini dress", "black maxi dress"]) == {"mini dress": [0, 1], "black dress": [0, 2]}


def _outcomes(dataset, item, draws=200):
    return {(p.target, p.text) for p in (dataset.training_pair(item, np.random.default_rng(s)) for s in range(draws))}


def test_training_pairs_are_the_hand_mined_ones(f200k):
    train = Fashion200kDataset(f200k, "train")
    item_of = {train.captions[i]: n for n, i in enumerate(train.modifiable)}
    black_mini, blue_mini, black_maxi = 0, 2, 3
    assert _outcomes(train, item_of["black mini dress"]) == {(blue_mini, "replace black with blue"), (black_maxi, "replace mini with maxi")}
    assert _outcomes(train, item_of["blue mini dress"]) == {(black_mini, "replace blue with black"), (1, "replace blue with black")}
    assert _outcomes(train, item_of["white dressdotmark"]) == {(5, "replace white with pink")}
    assert {text for _, text in _outcomes(train, item_of["black and black skirt"])} == {"replace black with white"}
    # The same generator state gives the same pair: nothing is carried between calls.
    assert train.training_pair(0, np.random.default_rng(7)) == train.training_pair(0, np.random.default_rng(7))


def test_pair_view_draws_depend_only_on_seed_iteration_and_source(f200k):
    train = Fashion200kDataset(f200k, "train")
    view = PairView(train, image_transform(8), seed=3)
    first = [view[(0, iteration)][1] for iteration in range(30)]
    assert first == [view[(0, iteration)][1] for iteration in range(30)]
    assert set(first) == {"replace black with blue", "replace mini with maxi"}
    assert [PairView(train, image_transform(8), seed=4)[(0, i)][1] for i in range(30)] != first


def test_pants_subset_with_the_change_template(f200k):
    train = load_dataset("fashion200k", f200k, "train", categories=("pants",), template="change {} to {}")
    assert len(train) == 2 and len(train.modifiable) == 2
    assert _outcomes(train, 0) == {(1, "change green to blue")}
    test = load_dataset("Fashion200k", f200k, "test", categories=["pants"], template="change {} to {}")
    assert len(test) == 2 and test.dropped_queries == 2
    (query,) = test.queries
    assert (query.source, query.text, query.target_caption, query.target) == (0, "change green to blue", "blue park skinny pants", 1)


def test_test_queries(f200k):
    test = Fashion200kDataset(f200k, "test")
    # Sorted: jacket, pants, skirt.
    assert len(test) == 6 and test.captions[5] == "blue short skirtstarmark"
    assert [(q.source, q.target, q.text) for q in test.queries] == [
        (4, 5, "replace red with blue"),  # captions differing in two words: the first differing ones
        (0, 1, "replace coat with coat"),  # no differing word: the original's loop leaves the last word
        (2, 3, "replace green with blue"),
    ]
    assert test.queries[0].target_caption == "blue short skirtstarmark"
    assert test.load_image(0).size == (8, 8)


def test_texts_follow_the_label_file_order(f200k):
    train = Fashion200kDataset(f200k, "train", label_file_order="listdir")
    names = [n for n in os.listdir(f200k / "labels") if n.endswith("_train_detect_all.txt")]
    by_file = {f"{c}_{s}_detect_all.txt": lines for (c, s), lines in LABELS.items()}
    expected = [caption.strip().replace(".", "dotmark").replace("&", "andmark") for n in names for _, caption in by_file[n]]
    assert train.texts() == expected
    assert [p.name for p in train.label_files] == names


def _broken(tmp_path, **changes) -> Path:
    return write_fashion200k(tmp_path / "f", images=False, **changes)


def test_bad_inputs_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match="label folder not found"):
        Fashion200kDataset(tmp_path, "train")
    root = _broken(tmp_path)
    (root / "test_queries.txt").unlink()
    with pytest.raises(DataError, match="test_queries.txt"):
        Fashion200kDataset(root, "test")
    with pytest.raises(DataError, match=r"no train label file for categories \['hat'\]"):
        Fashion200kDataset(root, "train", categories=["hat"])

    (root / "test_queries.txt").write_text("a b\nwomen/none.jpeg women/pants/skinny/25/25_0.jpeg\n")
    with pytest.raises(DataError, match=r"test_queries.txt:1: image a is not in the test label files"):
        Fashion200kDataset(root, "test")
    (root / "test_queries.txt").write_text("women/pants/skinny/24/24_0.jpeg\n")
    with pytest.raises(DataError, match=r"test_queries.txt:1: expected 'source_path target_path', found 1"):
        Fashion200kDataset(root, "test")

    labels = root / "labels" / "top_train_detect_all.txt"
    labels.write_text("a.jpeg\t0.1\tred top\nb.jpeg\tgreen top\n")
    with pytest.raises(DataError, match=r"top_train_detect_all.txt:2: expected 3 tab-separated fields .* found 2"):
        Fashion200kDataset(root, "train")
    labels.write_bytes(b"a.jpeg\t0.1\tred top\nb.jpeg\t0.1\tgr\xffen top\n")
    with pytest.raises(DataError, match=r"top_train_detect_all.txt:2: byte 0xff is not UTF-8"):
        Fashion200kDataset(root, "train")
    labels.write_text("")
    with pytest.raises(DataError, match=r"top_train_detect_all.txt: no images"):
        Fashion200kDataset(root, "train")


def test_data_check_reports_counts_and_missing_images(f200k, tmp_path, capsys):
    assert main(["data", "check", "--dataset", "fashion200k", "--dataset_path", str(f200k)]) == 0
    out = capsys.readouterr().out
    assert "train: images 14, training items 10, queries 0, unique captions 13, modifiable images 10" in out
    assert "test: images 6, training items 0, queries 3" in out and out.rstrip().endswith("OK")
    bare = _broken(tmp_path)
    assert main(["data", "check", "--dataset", "fashion200k", "--dataset_path", str(bare)]) == 1
    out = capsys.readouterr().out
    assert "train: 14 images missing" in out and "test: 6 images missing" in out and "PROBLEMS FOUND" in out


def test_train_and_evaluate_pants_through_the_cli(f200k, tmp_path, capsys):
    arguments = [
        "train", "--dataset", "fashion200k", "--dataset_path", str(f200k), "--category_to_train", "pants",
        "--query_template", "change {} to {}", "--model", "concat", "--loss", "batch_based_classification",
        "--num_iters", "2", "--batch_size", "2", "--embed_dim", "8", "--image_size", "32",
        "--log_dir", str(tmp_path), "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iteration"] == 2 and set(result) >= {"R@1"}
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    assert config["category_to_train"] == "pants" and config["query_template"] == "change {} to {}"
