"""FashionIQ loader: the real annotation files (images absent) and a tiny tree in the same format."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fixture_trees import write_tiny_fiq
from PIL import Image

from tirg.cli import main
from tirg.data import FashionIQDataset, load_dataset
from tirg.errors import DataError

# Counts from ../shared/data/fashioniq/README.md: queries and gallery per category and split.
QUERIES = {
    "train": {"dress": 5985, "shirt": 5988, "toptee": 6027},
    "val": {"dress": 2017, "shirt": 2038, "toptee": 1961},
    "real_test": {"dress": 2024, "shirt": 2038, "toptee": 2056},
}
GALLERY = {"train": 11452 + 19036 + 16121, "val": 3817 + 6346 + 5373, "real_test": 3818 + 6346 + 5374}


@pytest.fixture(scope="module")
def real_fiq(shared_data) -> Path:
    return shared_data / "fashioniq"


def _with_images(tmp_path: Path, real: Path, asins) -> Path:
    """The real annotation folders beside an images/ folder holding only `asins`."""
    root = tmp_path / "fiq"
    (root / "images").mkdir(parents=True)
    for name in ("captions", "image_splits"):
        os.symlink(real / name, root / name)
    rng = np.random.default_rng(0)
    for asin in asins:
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{asin}.jpg")
    return root


@pytest.mark.parametrize("split", ["train", "val", "real_test"])
def test_real_annotation_counts_with_images_absent(real_fiq, split):
    dataset = FashionIQDataset(real_fiq, split, skip_missing_images=True)
    assert dataset.annotated == QUERIES[split]
    assert dataset.skipped == {"images": GALLERY[split], "queries": sum(QUERIES[split].values())}
    assert len(dataset) == 0 and not dataset.queries


def test_real_annotations_without_images_fail_clearly_by_default(real_fiq, tmp_path):
    with pytest.raises(DataError, match=r"image folder not found: .*images .*skip_missing_images"):
        FashionIQDataset(real_fiq, "train")
    root = _with_images(tmp_path, real_fiq, ["B003FGW7MK"])
    with pytest.raises(DataError, match=r"11451 of the 11452 images of .*split.dress.train.json are missing"):
        FashionIQDataset(root, "train")


def test_text_construction_on_real_captions(real_fiq, tmp_path):
    # Candidates and targets of the first dress, shirt and toptee training entries and of dress val entry 14.
    asins = ["B003FGW7MK", "B008BHCT58", "B008E5CF6U", "B00CBNH8JK", "B000FLD4AC", "B005LUQ0FI", "B009DI5YSS", "B008MNM7Y4"]
    root = _with_images(tmp_path, real_fiq, asins)
    train = load_dataset("fashionIQ", root, "train", skip_missing_images=True)
    texts = {train.asins[p.source]: p.text for p in train.pairs}
    assert texts["B003FGW7MK"] == "dress is solid black with no sleeves and it is black with straps"
    assert texts["B008E5CF6U"] == "shirt is short sleeved and has a collar and it is grey with shorter sleeves"
    # The original neither trims nor drops the stray space of the second caption.
    assert texts["B000FLD4AC"] == "toptee has no sleeves and is light pink and it  pink"
    pair = next(p for p in train.pairs if train.asins[p.source] == "B003FGW7MK")
    assert train.asins[pair.target] == "B008BHCT58" and train.captions[pair.target] == pair.text
    assert train.texts() == [p.text for p in train.pairs]
    val = load_dataset("fashioniq", root, "test", skip_missing_images=True)  # "test" reads the val files
    (query,) = [q for q in val.queries if val.asins[q.source] == "B009DI5YSS"]
    assert query.text == "dress is more black and elegant and it is solid black and has shorter sleeves"
    plain = FashionIQDataset(root, "val", categories=["dress"], skip_missing_images=True)
    assert plain.join == "plain" and plain.queries[0].text == "is more black and elegant is solid black and has shorter sleeves"


@pytest.fixture(scope="module")
def tiny_fiq(tmp_path_factory) -> Path:
    return write_tiny_fiq(tmp_path_factory.mktemp("fiq") / "fashionIQ")


def test_tiny_tree_gallery_pairs_and_captions(tiny_fiq):
    train = FashionIQDataset(tiny_fiq, "train")
    assert train.asins == ["D1", "D2", "D3", "X", "S1", "S2", "X", "T1", "T2"]
    assert [(p.source, p.text, p.target) for p in train.pairs] == [
        (0, "dress is red and it has sleeves", 1),
        (1, "dress is longer and it is blue", 2),
        (4, "shirt is plaid and it has buttons", 6),  # the target is the shirt list's X
        (7, "toptee is green and it is tighter", 8),
    ]
    assert train.captions == [
        "dress",
        "dress is red and it has sleeves",
        "dress is longer and it is blue",
        "dress",
        "shirt",
        "shirt",
        "shirt is plaid and it has buttons",
        "toptee",
        "toptee is green and it is tighter",
    ]
    assert train.search_depth((1, 5)) == 6  # one repeated ASIN


def test_metrics_deduplicate_ids_and_average_categories(tiny_fiq):
    val = FashionIQDataset(tiny_fiq, "val")
    neighbors = np.array([
        [3, 6, 1],  # target D2: X twice, then D2 -> rank 2 after de-duplication (3 without)
        [2, 0, 1],  # target D3: rank 1
        [3, 4, 5],  # target X (the shirt entry): the dress list's X is the same ASIN -> rank 1
        [7, 0, 1],  # target T2: missed
    ])  # fmt: skip
    metrics = val.retrieval_metrics(neighbors, ks=(1, 2))
    assert metrics == pytest.approx({
        "R@1_dress": 0.5, "R@1_shirt": 1.0, "R@1_toptee": 0.0, "R@1": 0.5,
        "R@2_dress": 1.0, "R@2_shirt": 1.0, "R@2_toptee": 0.0, "R@2": 2 / 3,
    })  # fmt: skip
    padded = np.pad(neighbors, ((0, 0), (0, 48)), constant_values=-1)
    deep = val.retrieval_metrics(padded, ks=(10, 50))
    assert deep["R@10"] == deep["R@50"] == pytest.approx(2 / 3) and deep["R_mean"] == pytest.approx(2 / 3)
    assert val.ranked_asins(neighbors, 2) == [["X", "D2"], ["D3", "D1"], ["X", "S1"], ["T1", "D1"]]


def test_real_test_has_queries_without_targets(tiny_fiq):
    real_test = FashionIQDataset(tiny_fiq, "real_test")
    assert [q.target for q in real_test.queries] == [None] * 4 and not real_test.pairs
    assert real_test.queries[2].text == "shirt is plaid and it has buttons"
    with pytest.raises(DataError, match="real_test has no targets"):
        real_test.retrieval_metrics(np.zeros((4, 2), dtype=np.int64), ks=(1,))


def test_bad_inputs(tiny_fiq, tmp_path):
    root = write_tiny_fiq(tmp_path / "bad")
    (root / "image_splits" / "split.toptee.train.json").write_text("[]")
    with pytest.raises(DataError, match=r"split.toptee.train.json: an empty category"):
        FashionIQDataset(root, "train")
    (root / "captions" / "cap.shirt.val.json").write_text('[\n{"candidate": "S1",\n "target" "X"}]')
    with pytest.raises(DataError, match=r"cap.shirt.val.json:3: malformed JSON"):
        FashionIQDataset(root, "val")
    (root / "captions" / "cap.dress.test.json").write_text('[{"candidate": "D1", "captions": ["a", "b"]}, {"captions": []}]')
    with pytest.raises(DataError, match=r"cap.dress.test.json: entry 1 needs keys 'candidate', 'captions'"):
        FashionIQDataset(root, "real_test")
    with pytest.raises(DataError, match="unknown FashionIQ categories"):
        FashionIQDataset(tiny_fiq, "train", categories=["shoes"])


def test_data_check_on_the_real_annotations(real_fiq, capsys):
    assert main(["data", "check", "--dataset", "fashionIQ", "--dataset_path", str(real_fiq)]) == 1
    out = capsys.readouterr().out
    assert "train: images 0" in out and f"images skipped (missing) {GALLERY['train']:,}" in out
    assert f"train: {GALLERY['train']:,} images missing" in out and out.rstrip().endswith("PROBLEMS FOUND")


def test_train_through_the_cli_with_the_original_spelling(tiny_fiq, tmp_path, capsys):
    arguments = [
        "train", "--dataset=fashionIQ", f"--dataset_path={tiny_fiq}", "--model", "tirg", "--loss", "batch_based_classification",
        "--num_iters", "2", "--batch_size", "2", "--embed_dim", "8", "--image_size", "32", "--skip_missing_images", "False",
        "--log_dir", str(tmp_path), "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"R@1_dress", "R@1_shirt", "R@1_toptee", "R@1", "R@5"} <= set(result)
