"""Errors before work (issue 13, item 6): bad image files and bad settings are refused up front.

Every loader's fixture tree (in its real on-disk format) is copied and one image is broken in one
of four ways: a 10-byte PNG, a truncated JPEG, a missing file, a text file under an image name. The
broken content is written at the image's own path (whatever its suffix), as a failed copy would.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from fixture_trees import write_css_original
from hashing_fixtures import write_cub, write_dogs
from PIL import Image

from tirg.checkpoint import atomic_torch_save, make_checkpoint
from tirg.cli import main
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.data.css import ORIGINAL_CSS_FILE
from tirg.data.verify import check_image_files, find_image_problems
from tirg.errors import ConfigError, DataError
from tirg.features import compute_and_save
from tirg.hashing.composed import ComposedHashConfig
from tirg.hashing.data import ImageLabelDataset, eval_transform, load_labeled_images
from tirg.hashing.train import HashTrainConfig, train_hashing
from tirg.models import build_model
from tirg.safe_pickle import load_object_npy
from tirg.text import Vocabulary
from tirg.training import train

BREAKAGES = ("ten_byte_png", "truncated_jpeg", "missing", "text_file")
# Loader -> (fixture, index of the test-split image broken): a test image is what used to fail only
# at the final evaluation, after all the training.
LOADERS = {
    "css": ("tiny_css", 3),
    "css_original": ("css_original_tree", 2),
    "fashion200k": ("fashion200k_tree", 1),
    "mitstates": ("mitstates_tree", 0),
    "fashioniq": ("fashioniq_tree", 1),
}


@pytest.fixture(scope="module")
def css_original_tree(tmp_path_factory) -> Path:
    return write_css_original(tmp_path_factory.mktemp("css_original") / "css")


def jpeg_bytes(seed: int = 0, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def break_image(path: Path, breakage: str, dangling: bool = False) -> None:
    """Break the image at `path`; `dangling`: a missing file leaves a dangling link (a loader that lists
    its folders, like MIT-States', would otherwise not see the file at all)."""
    if breakage == "ten_byte_png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    elif breakage == "truncated_jpeg":
        data = jpeg_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif breakage == "missing":
        path.unlink()
        if dangling:
            path.symlink_to(path.parent / "deleted.jpg")
    else:
        path.write_text("user,notes\n1,this is a CSV\n")


EXPECTED_KIND = {"ten_byte_png": "unreadable", "truncated_jpeg": "truncated", "missing": "missing", "text_file": "unreadable"}


def test_header_check_finds_each_kind_of_bad_file(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes())
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    png = (tmp_path / "good.png").read_bytes()
    (tmp_path / "no_iend.png").write_bytes(png[:-12])  # every pixel there, the IEND chunk cut off
    (tmp_path / "trailer.jpg").write_bytes(jpeg_bytes() + b"\x00" * 5000)  # data after the end marker (motion photos)
    for breakage, name in zip(BREAKAGES, ("short.png", "cut.jpg", "gone.jpg", "notes.jpg")):
        (tmp_path / name).write_bytes(b"x")
        break_image(tmp_path / name, breakage)
    paths = [tmp_path / n for n in ("good.jpg", "good.png", "no_iend.png", "trailer.jpg", "short.png", "cut.jpg", "gone.jpg", "notes.jpg")]
    for decode in (False, True):
        problems = find_image_problems(paths + paths[:2], decode=decode)  # a path listed twice is checked once
        assert [(p.path.name, p.kind) for p in problems] == [
            ("no_iend.png", "truncated"), ("short.png", "unreadable"), ("cut.jpg", "truncated"),
            ("gone.jpg", "missing"), ("notes.jpg", "unreadable"),
        ]  # fmt: skip
    with pytest.raises(DataError, match=r"^my set: .*no_iend.png is truncated .*; 4 more of its 8 image files are bad too"):
        check_image_files(paths, "my set")
    check_image_files(paths[:2] + paths[3:4], "my set")  # whole files pass


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("loader", LOADERS)
def test_train_refuses_a_bad_test_image_before_any_iteration(loader, breakage, request, tmp_path, monkeypatch):
    fixture, index = LOADERS[loader]
    root = tmp_path / "data"
    shutil.copytree(request.getfixturevalue(fixture), root, symlinks=True)
    config = TrainConfig(dataset=loader, dataset_path=str(root), embed_dim=8, batch_size=2, num_iters=2, image_size=32, device="cpu")
    path = load_dataset(loader, root, "test").image_files[index]
    break_image(path, breakage, dangling=loader == "mitstates")
    monkeypatch.setattr(
        importlib.import_module("tirg.training_setup"),
        "build_model",
        lambda *a, **k: pytest.fail("the model was built before the data was checked"),
    )
    # FashionIQ finds its images by listing the folder: a missing one is named by its ASIN when the split loads.
    named = path.stem if (loader, breakage) == ("fashioniq", "missing") else f"{path} is {EXPECTED_KIND[breakage]}"
    with pytest.raises(DataError, match=named.replace(".", r"\.")):
        train(config, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "latest_checkpoint.pth").exists()


def test_train_checks_the_training_split_too(tiny_css, tmp_path):
    root = tmp_path / "css"
    shutil.copytree(tiny_css, root)
    path = load_dataset("css", root, "train").image_files[7]
    break_image(path, "truncated_jpeg")
    with pytest.raises(DataError, match=rf"^css train at .*: {path} is truncated"):
        train(TrainConfig(dataset_path=str(root), num_iters=1, device="cpu"), run_dir=tmp_path / "run")


def test_compute_and_save_refuses_a_bad_gallery_image_before_computing(tiny_css, tmp_path, monkeypatch):
    root = tmp_path / "css"
    shutil.copytree(tiny_css, root)
    config = TrainConfig(dataset_path=str(root), model="imgonly", embed_dim=8, image_size=32, device="cpu")
    model = build_model("imgonly", Vocabulary.build(load_dataset("css", root, "train").texts()), 8)
    atomic_torch_save(make_checkpoint(model, "imgonly", asdict(config), 0), tmp_path / "model.pth")
    path = load_dataset("css", root, "test").image_files[-1]
    break_image(path, "ten_byte_png")
    monkeypatch.setattr("tirg.features.compute_image_features", lambda *a, **k: pytest.fail("features computed before the check"))
    with pytest.raises(DataError, match=rf"{path} is unreadable"):
        compute_and_save(tmp_path / "model.pth", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


HASH_SETS = {"CUB": (write_cub, 2), "Stanford_Dogs": (write_dogs, 4)}


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("name", HASH_SETS)
def test_hashing_refuses_a_bad_image_before_training(name, breakage, tmp_path, monkeypatch):
    write, index = HASH_SETS[name]
    root = write(tmp_path / name)
    path = load_labeled_images(name, root, "test").files[index]
    break_image(path, breakage)
    config = HashTrainConfig(
        dataset_name=name, dataset_path=str(root), binary_bits=8, batch_size=4, classes_per_batch=2, num_epochs=1, image_size=32
    )
    monkeypatch.setattr("tirg.hashing.train.HashNet", lambda *a, **k: pytest.fail("the network was built before the data was checked"))
    # A missing file is found by the loader itself, with the count of missing files.
    expected = f"{path} is missing \\(1 of" if breakage == "missing" else f"{path} is {EXPECTED_KIND[breakage]}"
    with pytest.raises(DataError, match=expected):
        train_hashing(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


@pytest.mark.parametrize("name", HASH_SETS)
def test_hashing_loader_names_a_non_image_file(name, tmp_path):
    write, index = HASH_SETS[name]
    images = load_labeled_images(name, write(tmp_path / name), "train")
    break_image(images.files[index], "text_file")
    with pytest.raises(DataError, match=rf"{name} train: image {index} is not a readable image: {images.files[index]}"):
        ImageLabelDataset(images, eval_transform(32))[index]


# (loader or hashing set, writer of the tree, breakage, path of the broken image under the tree)
CHECKED = [
    ("css", "tiny_css", "ten_byte_png"),
    ("fashion200k", "fashion200k_tree", "truncated_jpeg"),
    ("mitstates", "mitstates_tree", "text_file"),
    ("fashionIQ", "fashioniq_tree", "ten_byte_png"),
    ("CUB", None, "truncated_jpeg"),
    ("Stanford_Dogs", None, "text_file"),
]


@pytest.mark.parametrize(("name", "fixture", "breakage"), CHECKED)
def test_data_check_decodes_every_image_and_exits_non_zero(name, fixture, breakage, request, tmp_path, capsys):
    root = tmp_path / "data"
    if fixture:
        shutil.copytree(request.getfixturevalue(fixture), root, symlinks=True)
    else:
        HASH_SETS[name][0](root)
    assert main(["data", "check", "--dataset", name, "--dataset_path", str(root)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    if fixture:
        path = load_dataset(name, root, "test").image_files[0]
    else:
        path = load_labeled_images(name, root, "test").files[0]
    break_image(path, breakage)
    assert main(["data", "check", "--dataset", name, "--dataset_path", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"1 images {EXPECTED_KIND[breakage]}, e.g.\n    {path} is {EXPECTED_KIND[breakage]}" in out
    assert out.rstrip().endswith("PROBLEMS FOUND")


TRAIN_CASES = [
    ({"num_iters": -1}, "num_iters=-1 (--num_iters): expected a number >= 0"),
    ({"num_iters": 2.5}, "num_iters=2.5 (--num_iters): expected an integer, got float"),
    ({"embed_dim": 0}, "embed_dim=0 (--embed_dim): expected a number >= 1"),
    ({"learning_rate": float("nan")}, "learning_rate=nan (--learning_rate): expected a finite number > 0"),
    ({"learning_rate": float("inf")}, "learning_rate=inf (--learning_rate)"),
    ({"learning_rate": -0.1}, "learning_rate=-0.1 (--learning_rate)"),
    ({"learning_rate_decay_frequency": 0}, "learning_rate_decay_frequency=0 (--learning_rate_decay_frequency): expected a number >= 1"),
    ({"batch_size": 1}, "batch_size=1 (--batch_size): expected a number >= 2"),
    ({"use_complete_text_query": "False"}, "use_complete_text_query='False' (--use_complete_text_query): expected True or False, got str"),
    ({"batch_size": True}, "batch_size=True (--batch_size): expected an integer, got bool"),
    ({"image_size": 32.0}, "image_size=32.0 (--image_size): expected an integer or None, got float"),
    ({"loss": "triplet"}, "loss='triplet' (--loss): expected one of"),
    ({"model": "resnet"}, "model='resnet' (--model): expected one of"),
]


@pytest.mark.parametrize(("changes", "message"), TRAIN_CASES)
def test_train_config_names_the_flag(changes, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**changes)
    assert message in str(error.value)


def test_train_config_takes_numpy_numbers_and_paths_as_plain_values(tmp_path):
    config = TrainConfig(num_iters=np.int64(3), learning_rate=1, dataset_path=tmp_path, model="TIRG")
    assert (type(config.num_iters), type(config.learning_rate), config.dataset_path) == (int, float, str(tmp_path))


def test_train_cli_refuses_bad_numbers_before_work(tmp_path, capsys):
    assert main(["train", "--num_iters", "-5", "--dataset_path", str(tmp_path / "none"), "--log_dir", str(tmp_path / "runs")]) == 2
    assert "(--num_iters): expected a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


HASH_CASES = [
    ({"binary_bits": 0}, "binary_bits=0 (--binary_bits): expected a number >= 1"),
    ({"binary_bits": 16.0}, "binary_bits=16.0 (--binary_bits): expected an integer, got float"),
    ({"lr": float("nan")}, "lr=nan (--lr)"),
    ({"batch_size": 0}, "batch_size=0 (--batchSize)"),
    ({"classes_per_batch": 0}, "classes_per_batch=0 (--classes_per_batch)"),
    ({"eval_batch_size": 0}, "eval_batch_size=0: expected a number >= 1"),
    ({"dataset_name": "ImageNet"}, "dataset_name='ImageNet' (--dataset_name)"),
]


@pytest.mark.parametrize(("changes", "message"), HASH_CASES)
def test_hash_config_names_the_flag(changes, message):
    with pytest.raises(ConfigError) as error:
        HashTrainConfig(**changes)
    assert message in str(error.value)


def test_hash_cli_refuses_bad_bits(tmp_path, capsys):
    assert main(["hash", "train", "--binary_bits", "-8", "--dataset_path", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "binary_bits=-8 (--binary_bits)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--hash-bits", "-8"], "--hash-bits -8: expected an integer >= 1"),
        (["--hash-bits", "8", "0"], "--hash-bits 0: expected an integer >= 1"),
        (["--hash-radii", "-1"], "--hash-radii -1: expected an integer >= 0"),
        (["--repeats", "0"], "--repeats 0: expected an integer >= 1"),
        (["--queries", "-3"], "--queries -3: expected an integer >= 1"),
        (["--learned-hash-cache", "train", "--hash-bits", "4", "--hash-radii", "5"], "--hash-radii 5 is larger than --hash-bits 4"),
    ],
)
def test_lsh_refuses_nonsensical_numbers_naming_the_flag(arguments, message, tmp_path, capsys):
    import lsh

    with pytest.raises(SystemExit) as exit_code:
        lsh.main(["--cache", str(tmp_path / "no_cache"), "--out", str(tmp_path / "out"), *arguments])
    assert exit_code.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_composed_hash_config_names_the_lsh_flag():
    with pytest.raises(ConfigError, match=r"bits=-1 \(--hash-bits\)"):
        ComposedHashConfig(bits=-1)


@pytest.mark.parametrize("skip_missing_images", [False, True])
def test_fashioniq_caption_naming_an_unlisted_image_names_file_and_entry(skip_missing_images, fashioniq_tree, tmp_path):
    root = tmp_path / "fiq"
    shutil.copytree(fashioniq_tree, root)
    captions = root / "captions" / "cap.shirt.val.json"
    entries = json.loads(captions.read_text())
    entries.append({"candidate": "S1", "target": "Z9", "captions": ["is red", "is long"]})  # Z9: no list, no image
    captions.write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"cap.shirt.val.json: entry 1 names image Z9, which .*split.shirt.val.json does not list"):
        load_dataset("fashioniq", root, "test", skip_missing_images=skip_missing_images)


def test_fashion200k_subset_still_refuses_a_query_naming_no_labelled_image(fashion200k_tree, tmp_path):
    root = tmp_path / "f200k"
    shutil.copytree(fashion200k_tree, root)
    queries = root / "test_queries.txt"
    queries.write_text(queries.read_text() + "women/pants/skinny/24/24_0.jpeg women/pants/skinny/99/99_0.jpeg\n")
    with pytest.raises(DataError, match=r"test_queries.txt:4: image women/pants/skinny/99/99_0.jpeg is not in the test label files"):
        load_dataset("fashion200k", root, "test", categories=["pants"])
    queries.write_text(queries.read_text().splitlines(keepends=True)[0] * 2)  # a skirt query: outside "pants", dropped
    assert load_dataset("fashion200k", root, "test", categories=["pants"]).dropped_queries == 2


def test_css_mod_naming_an_image_outside_the_split_names_file_and_mod(tiny_css, css_original_tree, tmp_path):
    root = tmp_path / "css"
    shutil.copytree(tiny_css, root)
    description = json.loads((root / "css.json").read_text())
    description["splits"]["test"]["mods"][2]["from"][0] = -1
    (root / "css.json").write_text(json.dumps(description))
    with pytest.raises(DataError, match=r"css.json: mod 2 \(.*\) of split 'test' names image -1, but the split has images 0 to"):
        load_dataset("css", root, "test")
    original = tmp_path / "original"
    shutil.copytree(css_original_tree, original)
    data = load_object_npy(str(original / ORIGINAL_CSS_FILE))
    data["train"]["mods"][1]["to"][-1] = 6
    np.save(original / ORIGINAL_CSS_FILE, np.array(data, dtype=object), allow_pickle=True)
    with pytest.raises(
        DataError,
        match=rf"{ORIGINAL_CSS_FILE}: mod 1 \('remove blue triangle'\) of split 'train' names image 6, but the split has images 0 to 5",
    ):
        load_dataset("css_original", original, "train")
