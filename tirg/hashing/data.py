"""Class-labelled image sets in their released layouts: CUB-200-2011 and Stanford Dogs.

CUB-200-2011 (root = the CUB_200_2011 folder):
    images.txt              <image_id> <path under images/>
    image_class_labels.txt  <image_id> <class_id>, class ids 1-based
    train_test_split.txt    <image_id> <is_training_image>, 1 = train, 0 = test
Stanford Dogs (root holds Images/ and the lists):
    train_list.mat / test_list.mat   MATLAB files with `file_list` and `annotation_list`
                                     (N x 1 cell arrays of strings; file paths are under Images/)
                                     and `labels` (N x 1, 1-based)
Labels are returned 0-based, in the order the files list the images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from tirg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from tirg.data.verify import check_image_files, read_rgb
from tirg.errors import DataError
from tirg.runtime import Stream, seeded_generator

SPLITS = ("train", "test")


@dataclass(frozen=True)
class LabeledImages:
    """One split of a class-labelled image set: absolute image paths and 0-based labels."""

    name: str
    split: str
    files: tuple[Path, ...]
    labels: np.ndarray  # int64 [n], 0-based

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    def check_images(self) -> None:
        """Raise DataError naming the first missing, truncated or unreadable image file (a header check)."""
        check_image_files(self.files, f"{self.name} {self.split}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")


def _read_id_table(path: Path) -> dict[int, tuple[str, int]]:
    """`<image_id> <value>` per line into {id: (value, line number)}; errors name the file and line."""
    if not path.is_file():
        raise DataError(f"{path} is missing (expected a CUB-200-2011 annotation file)")
    table: dict[int, tuple[str, int]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{number}: expected '<image_id> <value>', got {line!r}")
        image_id = int(parts[0])
        if image_id in table:
            raise DataError(f"{path}:{number}: image id {image_id} appears twice")
        table[image_id] = (parts[1].strip(), number)
    return table


def load_cub(root: str | Path, split: str) -> LabeledImages:
    """The official train or test split of CUB-200-2011 at `root` (or a class subset in its layout)."""
    _check_split(split)
    root = Path(root)
    names = root / "images.txt", root / "image_class_labels.txt", root / "train_test_split.txt"
    paths, classes, flags = (_read_id_table(p) for p in names)
    for table, path in ((classes, names[1]), (flags, names[2])):
        missing = sorted(set(paths) - set(table))
        if missing:
            raise DataError(f"{path} has no line for image id {missing[0]} (listed in {names[0]}); {len(missing)} missing")
    wanted = "1" if split == "train" else "0"
    files, labels = [], []
    for image_id, (relative, _) in paths.items():
        (flag, flag_line), (label, label_line) = flags[image_id], classes[image_id]
        if flag not in ("0", "1"):
            raise DataError(f"{names[2]}:{flag_line}: image {image_id} has {flag!r}, expected 0 (test) or 1 (train)")
        if not label.isdigit() or int(label) < 1:
            raise DataError(f"{names[1]}:{label_line}: image {image_id} has class {label!r}, expected an integer >= 1")
        if flag == wanted:
            files.append(root / "images" / relative)
            labels.append(int(label))
    _check_files_exist(files, root / "images")
    return LabeledImages("CUB", split, tuple(files), np.array(labels, dtype=np.int64) - 1)


def load_stanford_dogs(root: str | Path, split: str) -> LabeledImages:
    """The official train or test list of Stanford Dogs at `root` (Images/ beside the .mat lists)."""
    _check_split(split)
    from scipy.io import loadmat

    root = Path(root)
    path = root / f"{split}_list.mat"
    if not path.is_file():
        raise DataError(f"{path} is missing (expected Stanford Dogs' {split}_list.mat)")
    try:
        mat = loadmat(path)
    except Exception as error:  # scipy raises several types for a file that is not MATLAB
        raise DataError(f"{path} is not a MATLAB .mat file ({error})") from None
    for field in ("file_list", "labels"):
        if field not in mat:
            raise DataError(f"{path} has no '{field}' variable (found {sorted(k for k in mat if not k.startswith('__'))})")
    relative = [_cell_string(path, i, cell) for i, cell in enumerate(np.asarray(mat["file_list"]).ravel())]
    raw_labels = np.asarray(mat["labels"]).ravel()
    if len(raw_labels) != len(relative):
        raise DataError(f"{path}: 'labels' has {len(raw_labels)} entries, 'file_list' {len(relative)}")
    if not np.issubdtype(raw_labels.dtype, np.number):
        raise DataError(f"{path}: 'labels' is {raw_labels.dtype}, expected numbers")
    bad = np.flatnonzero((raw_labels < 1) | (raw_labels != np.round(raw_labels)))
    if len(bad):
        raise DataError(f"{path}: 'labels' entry {bad[0] + 1} is {raw_labels[bad[0]].item()!r}, expected a 1-based class number")
    files = [root / "Images" / r for r in relative]
    _check_files_exist(files, root / "Images")
    return LabeledImages("Stanford_Dogs", split, tuple(files), raw_labels.astype(np.int64) - 1)


def _cell_string(path: Path, index: int, cell: object) -> str:
    """One entry of a MATLAB cell array of strings, as loadmat returns it (array(['...']))."""
    values = np.asarray(cell).ravel()
    if len(values) != 1 or not isinstance(values[0], str):
        raise DataError(f"{path}: 'file_list' entry {index + 1} is {cell!r}, expected one string")
    return values[0]


def _check_files_exist(files: list[Path], folder: Path) -> None:
    if not folder.is_dir():
        raise DataError(f"{folder} is missing (the image folder of the data set)")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{missing[0]} is missing ({len(missing)} of {len(files)} listed images are absent)")


LOADERS: dict[str, Callable[[str | Path, str], LabeledImages]] = {"CUB": load_cub, "Stanford_Dogs": load_stanford_dogs}


def load_labeled_images(name: str, root: str | Path, split: str) -> LabeledImages:
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r} (--dataset_name); choose from {sorted(LOADERS)}")
    return LOADERS[name](root, split)


class TrainAugmentation:
    """The original's augmentation scaled to `image_size`: resize to 8/7 of it, random crop, flip.

    The crop and the flip are drawn from the generator each call is given, never from torch's
    global one (which dropout and initialisation use), so they form a stream of their own.
    """

    def __init__(self, image_size: int) -> None:
        self.size = image_size
        self.resize = round(image_size * 256 / 224)

    def __call__(self, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
        image = TF.resize(image, [self.resize, self.resize])
        top, left = torch.randint(self.resize - self.size + 1, (2,), generator=generator).tolist()
        image = TF.crop(image, top, left, self.size, self.size)
        if torch.rand(1, generator=generator).item() < 0.5:
            image = TF.hflip(image)
        return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def eval_transform(image_size: int) -> transforms.Compose:
    """Deterministic: resize to 8/7 of `image_size` and centre-crop (used for queries and database)."""
    resize = round(image_size * 256 / 224)
    return transforms.Compose([
        transforms.Resize((resize, resize)), transforms.CenterCrop(image_size),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


class ImageLabelDataset(torch.utils.data.Dataset):
    """(image tensor, label) pairs of a LabeledImages split; grey-scale images become RGB."""

    def __init__(self, images: LabeledImages, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.load(index)), int(self.images.labels[index])

    def load(self, index: int) -> Image.Image:
        return read_rgb(self.images.files[index], f"{self.images.name} {self.images.split}: image {index}")


class AugmentedImages(ImageLabelDataset):
    """Training images of epoch `epoch`: image i is augmented with the generator of (seed, epoch, i)
    in the augmentation stream, so the same crops come out in any worker, on any rerun."""

    def __init__(self, images: LabeledImages, image_size: int, seed: int, epoch: int) -> None:
        super().__init__(images, TrainAugmentation(image_size))
        self.seed = seed
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = seeded_generator(self.seed, self.epoch, Stream.AUGMENTATION, index)
        return self.transform(self.load(index), generator), int(self.images.labels[index])
