"""Tiny data sets in the real on-disk layouts of CUB-200-2011 and Stanford Dogs, written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: int = 20, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    (image.convert("L") if mode == "L" else image).save(path)


def write_cub(root: Path, n_classes: int = 4, per_class: int = 6, n_train_per_class: int = 4) -> Path:
    """CUB_200_2011 layout: ids 1.., classes 1.., first n_train_per_class of each class in train."""
    root.mkdir(parents=True, exist_ok=True)
    images, labels, split = [], [], []
    image_id = 0
    for c in range(1, n_classes + 1):
        for i in range(per_class):
            image_id += 1
            relative = f"{c:03d}.Bird_{c}/Bird_{c}_{i:04d}.jpg"
            write_image(root / "images" / relative, image_id, mode="L" if image_id == 1 else "RGB")
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {1 if i < n_train_per_class else 0}")
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return root


def cell_array(strings: list[str]) -> np.ndarray:
    """An N x 1 MATLAB cell array of strings, as savemat writes it and loadmat reads it back."""
    cells = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cells[i, 0] = np.array([s])
    return cells


def write_dogs(
    root: Path, breeds: tuple[str, ...] = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog")
) -> Path:
    """Images/<breed>/<file>.jpg with train_list.mat / test_list.mat (file_list, annotation_list, labels)."""
    from scipy.io import savemat

    for split, indices in (("train", range(3)), ("test", range(3, 5))):
        files, labels = [], []
        for label, breed in enumerate(breeds, start=1):
            for i in indices:
                relative = f"{breed}/{breed.split('-')[0]}_{i}.jpg"
                write_image(root / "Images" / relative, hash(relative) % 1000)
                files.append(relative)
                labels.append(label)
        savemat(
            root / f"{split}_list.mat",
            {
                "file_list": cell_array(files),
                "annotation_list": cell_array([f.removesuffix(".jpg") for f in files]),
                "labels": np.array(labels, dtype=np.float64)[:, None],
            },
        )
    return root
