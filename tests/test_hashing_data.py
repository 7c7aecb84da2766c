from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hashing_fixtures import cell_array, write_cub, write_dogs
from scipy.io import loadmat, savemat

from tirg.errors import DataError
from tirg.hashing.data import ImageLabelDataset, eval_transform, load_cub, load_labeled_images, load_stanford_dogs
from tirg.hashing.sampler import ClassBalancedBatchSampler


def test_cub_fixture_splits_and_labels(tmp_path: Path) -> None:
    root = write_cub(tmp_path / "CUB_200_2011", n_classes=4, per_class=6, n_train_per_class=4)
    train, test = load_cub(root, "train"), load_cub(root, "test")
    assert (len(train), len(test)) == (16, 8)
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4  # 1-based class ids become 0-based
    assert train.files[0] == root / "images" / "001.Bird_1" / "Bird_1_0000.jpg"
    image, label = ImageLabelDataset(train, eval_transform(16))[0]  # the first image is grey-scale on disk
    assert image.shape == (3, 16, 16) and label == 0


def test_real_cub50_subset(shared_data: Path) -> None:
    root = shared_data / "cub50" / "CUB_200_2011"
    train, test = load_labeled_images("CUB", root, "train"), load_labeled_images("CUB", root, "test")
    assert (len(train), len(test)) == (1500, 1389)
    assert train.num_classes == test.num_classes == 50
    assert set(train.labels.tolist()) == set(range(50))


@pytest.mark.parametrize(
    ("file", "line", "replacement", "message"),
    [
        ("train_test_split.txt", 3, "3 2", r"train_test_split.txt:3: image 3 has '2', expected 0 \(test\) or 1 \(train\)"),
        ("image_class_labels.txt", 2, "2 zero", r"image_class_labels.txt:2: image 2 has class 'zero'"),
        ("images.txt", 5, "five 001.Bird_1/x.jpg", r"images.txt:5: expected '<image_id> <value>'"),
        ("images.txt", 6, "5 001.Bird_1/Bird_1_0004.jpg", r"images.txt:6: image id 5 appears twice"),
    ],
)
def test_cub_bad_lines_name_file_and_line(tmp_path: Path, file: str, line: int, replacement: str, message: str) -> None:
    root = write_cub(tmp_path / "CUB_200_2011")
    lines = (root / file).read_text().splitlines()
    lines[line - 1] = replacement
    (root / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_cub(root, "train")


def test_cub_missing_label_line_and_image(tmp_path: Path) -> None:
    root = write_cub(tmp_path / "CUB_200_2011")
    labels = root / "image_class_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"image_class_labels.txt has no line for image id 24"):
        load_cub(root, "test")
    root = write_cub(tmp_path / "other" / "CUB_200_2011")
    (root / "images" / "002.Bird_2" / "Bird_2_0001.jpg").unlink()
    with pytest.raises(DataError, match=r"Bird_2_0001.jpg is missing \(1 of 16"):
        load_cub(root, "train")


def test_dogs_mat_fixture_has_the_real_structure(tmp_path: Path) -> None:
    root = write_dogs(tmp_path / "dogs")
    mat = loadmat(root / "train_list.mat")
    # As in the released file: N x 1 cell arrays of 1-element string arrays and N x 1 numeric labels.
    assert mat["file_list"].shape == (9, 1) and mat["file_list"].dtype == object
    assert mat["file_list"][0, 0][0] == "n02085620-Chihuahua/n02085620_0.jpg"
    assert mat["annotation_list"][0, 0][0] == "n02085620-Chihuahua/n02085620_0"
    assert mat["labels"].shape == (9, 1)


def test_dogs_loader(tmp_path: Path) -> None:
    root = write_dogs(tmp_path / "dogs")
    train, test = load_stanford_dogs(root, "train"), load_labeled_images("Stanford_Dogs", root, "test")
    assert (len(train), len(test)) == (9, 6)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert test.files[-1] == root / "Images" / "n02085936-Maltese_dog" / "n02085936_4.jpg"


def test_dogs_bad_files(tmp_path: Path) -> None:
    root = write_dogs(tmp_path / "dogs")
    savemat(root / "train_list.mat", {"file_list": cell_array(["a.jpg"])})
    with pytest.raises(DataError, match=r"train_list.mat has no 'labels' variable"):
        load_stanford_dogs(root, "train")
    savemat(root / "train_list.mat", {"file_list": cell_array(["n02085620-Chihuahua/n02085620_0.jpg"]), "labels": np.array([[0.0]])})
    with pytest.raises(DataError, match=r"train_list.mat: 'labels' entry 1 is 0.0, expected a 1-based class number"):
        load_stanford_dogs(root, "train")
    (root / "test_list.mat").write_text("not matlab")
    with pytest.raises(DataError, match=r"test_list.mat is not a MATLAB .mat file"):
        load_stanford_dogs(root, "test")
    with pytest.raises(DataError, match=r"nowhere/train_list.mat is missing"):
        load_stanford_dogs(tmp_path / "nowhere", "train")


def test_balanced_sampler_draws_classes_by_images() -> None:
    labels = np.repeat(np.arange(12), 9)
    labels = np.concatenate([labels, [12, 12, 12]])  # a class with fewer than M images: drawn with replacement
    sampler = ClassBalancedBatchSampler(labels, 10, 8, generator=torch.Generator().manual_seed(1))
    batches = list(sampler)
    assert len(batches) == len(labels) // 80
    for batch in batches:
        counts = np.bincount(labels[batch], minlength=13)
        assert sorted(counts[counts > 0].tolist()) == [8] * 10
    again = list(ClassBalancedBatchSampler(labels, 10, 8, generator=torch.Generator().manual_seed(1)))
    assert again == batches
    with pytest.raises(ValueError, match="only 13 classes"):
        ClassBalancedBatchSampler(labels, 14, 2)
