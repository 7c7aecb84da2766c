"""Outputs never replace what the tool did not write; run folders are never shared; failed runs leave none."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import root_script
from hashing_fixtures import write_cub, write_dogs

from tirg.checkpoint import CHECKPOINT_NAME, load_checkpoint
from tirg.cli import main
from tirg.config import TrainConfig
from tirg.data import CSSGeneratorConfig, generate_css
from tirg.errors import OutputError
from tirg.features import FEATURE_CACHE, compute_and_save, load_feature_cache
from tirg.fileio import atomic_directory, check_output_dir, marked_kind, output_lock, recover_interrupted
from tirg.runs import hash_run_name, new_run_dir
from tirg.runtime import seed_everything
from tirg.training import train

ROOT = Path(__file__).resolve().parents[1]
SMALL_CSS = ["--n-train", "10", "--n-test", "10"]


def _compute_and_save_main(argv: list[str]) -> int:
    return root_script("compute_and_save").main(argv)


@pytest.fixture(scope="module")
def run(tiny_css, tmp_path_factory) -> Path:
    """A finished two-iteration run on the tiny CSS set (its folder: latest_checkpoint.pth, config.json, ...)."""
    seed_everything(0)
    config = TrainConfig(
        dataset_path=str(tiny_css), model="tirg", loss="batch_based_classification", embed_dim=16,
        batch_size=4, num_iters=2, image_size=32, device="cpu",
    )  # fmt: skip
    return train(config, run_dir=tmp_path_factory.mktemp("safe") / "run").run_dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# compute_and_save.py and `tirg data css`: foreign folders kept, own earlier output replaced only with --overwrite


def test_compute_and_save_keeps_a_foreign_folder_and_replaces_its_own_cache_only_with_overwrite(run, tmp_path, capsys):
    checkpoint = str(run / CHECKPOINT_NAME)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert _compute_and_save_main(["--checkpoint", checkpoint, "--out", str(foreign), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert str(foreign) in error and "notes.txt" in error
    assert (foreign / "notes.txt").read_text() == "keep me" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    cache = tmp_path / "cache"
    assert _compute_and_save_main(["--checkpoint", checkpoint, "--out", str(cache)]) == 0
    original = np.array(load_feature_cache(cache).gallery_features)
    np.save(cache / "gallery_features.npy", np.zeros_like(original))  # mark this version
    assert _compute_and_save_main(["--checkpoint", checkpoint, "--out", str(cache)]) == 2
    assert "already holds a feature cache; pass --overwrite" in capsys.readouterr().err
    assert not np.load(cache / "gallery_features.npy").any()
    assert _compute_and_save_main(["--checkpoint", checkpoint, "--out", str(cache), "--overwrite"]) == 0
    np.testing.assert_array_equal(load_feature_cache(cache, checkpoint=checkpoint).gallery_features, original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "mine"]  # no staging, aside or lock left


def test_compute_and_save_into_its_run_folder_or_data_set_loses_nothing(run, tiny_css, capsys):
    # The two reported losses: --out RUN deleted the checkpoint, --out data/css deleted the images.
    for out, words in ((run, "is a run folder (holds latest_checkpoint.pth, config.json)"), (tiny_css, "is a CSS data set (css.json)")):
        before = _snapshot(out)
        assert _compute_and_save_main(["--checkpoint", str(run / CHECKPOINT_NAME), "--out", str(out), "--overwrite"]) == 2
        assert words in capsys.readouterr().err
        assert _snapshot(out) == before


def test_data_css_keeps_a_foreign_folder_and_replaces_its_own_data_set_only_with_overwrite(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "photo.jpg").write_bytes(b"not generated")
    assert main(["data", "css", "--out", str(foreign), *SMALL_CSS, "--overwrite"]) == 2
    assert "photo.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["photo.jpg"] and (foreign / "photo.jpg").read_bytes() == b"not generated"

    out = tmp_path / "css"
    assert main(["data", "css", "--out", str(out), *SMALL_CSS, "--seed", "1"]) == 0
    first = (out / "css.json").read_bytes()
    assert main(["data", "css", "--out", str(out), *SMALL_CSS, "--seed", "2"]) == 2
    assert "already holds a generated CSS data set; pass --overwrite" in capsys.readouterr().err
    assert (out / "css.json").read_bytes() == first
    assert main(["data", "css", "--out", str(out), *SMALL_CSS, "--seed", "2", "--overwrite"]) == 0
    assert json.loads((out / "css.json").read_text())["generator"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["css", "mine"]


# Destinations refused whatever --overwrite says


@pytest.fixture
def refused_destinations(tmp_path, monkeypatch, run, tiny_css, fashion200k_tree, mitstates_tree, fashioniq_tree):
    cwd = tmp_path / "work" / "here"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "file.txt").write_text("a file")
    return {
        ".": (Path("."), "is the current folder or one of its parents"),
        "parent of cwd": (tmp_path / "work", "is the current folder or one of its parents"),
        "home": (Path("~"), "is the home folder"),
        "filesystem root": (Path("/"), "is a filesystem root"),
        "existing file": (tmp_path / "file.txt", "is an existing file"),
        "run folder": (run, "is a run folder"),
        "css": (tiny_css, "is a CSS data set"),
        "fashion200k": (fashion200k_tree, "is a Fashion200k data set"),
        "mitstates": (mitstates_tree, "MIT-States"),
        "fashioniq": (fashioniq_tree, "is a FashionIQ data set"),
        "cub": (write_cub(tmp_path / "CUB_200_2011"), "is a CUB-200-2011 data set"),
        "dogs": (write_dogs(tmp_path / "dogs"), "is a Stanford Dogs data set"),
    }


def test_each_refused_destination_kind_is_refused_with_its_reason_and_left_as_it_was(refused_destinations):
    for label, (path, reason) in refused_destinations.items():
        before = _snapshot(path) if path.expanduser().is_dir() and label not in (".", "filesystem root", "home") else None
        with pytest.raises(OutputError, match=reason) as raised:
            check_output_dir(path, FEATURE_CACHE, overwrite=True)
        assert str(path.expanduser().resolve()) in str(raised.value), label
        with pytest.raises(OutputError, match=reason):
            with atomic_directory(path, FEATURE_CACHE, overwrite=True):
                raise AssertionError(f"{label}: the write must not start")
        if before is not None:
            assert _snapshot(path) == before, label


def test_an_empty_folder_or_a_new_path_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty", FEATURE_CACHE) == (tmp_path / "empty").resolve()
    assert check_output_dir(tmp_path / "a" / "b", FEATURE_CACHE) == (tmp_path / "a" / "b").resolve()
    assert not (tmp_path / "a").exists()  # the check creates nothing


# Lock, unwritable destinations, crashes


NOTES = marked_kind("test output", "tirg-test-output", ("notes.txt",))


def test_the_lock_refuses_a_second_writer_and_a_dead_writers_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, NOTES) as staging:
        with pytest.raises(OutputError, match=rf"{out} is being written by another process \(pid {os.getpid()}"):
            with atomic_directory(out, NOTES, overwrite=True):
                raise AssertionError("the second writer must not start")
        (staging / "notes.txt").write_text("first")
    assert (out / "notes.txt").read_text() == "first"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (tmp_path / ".out.lock").write_text(finished.stdout.strip())  # a killed writer's lock: its pid is gone
    with atomic_directory(out, NOTES, overwrite=True) as staging:
        (staging / "notes.txt").write_text("second")
    assert (out / "notes.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_unwritable_destination_fails_before_any_work(run, tmp_path, monkeypatch):
    (tmp_path / "file.txt").write_text("a file")
    unwritable = tmp_path / "file.txt" / "out"  # under a regular file: nothing can be created there, even by root

    def spy(*args, **kwargs):
        raise AssertionError("work started before the destination was checked")

    monkeypatch.setattr("tirg.features.load_model", spy)
    monkeypatch.setattr("tirg.data.css_generate.render", spy)
    monkeypatch.setattr("tirg.hashing.train.load_labeled_images", spy)
    monkeypatch.setattr("tirg.demo.train", spy)
    message = rf"cannot write {unwritable}: {tmp_path / 'file.txt'} is a file"
    with pytest.raises(OutputError, match=message):
        compute_and_save(run / CHECKPOINT_NAME, unwritable)
    with pytest.raises(OutputError, match=message):
        generate_css(unwritable, CSSGeneratorConfig(n_train=10, n_test=10))
    from tirg.demo import DemoConfig, run_demo
    from tirg.hashing import HashTrainConfig, train_hashing

    with pytest.raises(OutputError, match=message):
        train_hashing(HashTrainConfig(dataset_path=str(tmp_path)), unwritable)
    with pytest.raises(OutputError, match=message):
        run_demo(DemoConfig(data_dir=str(tmp_path / "css"), results_dir=str(unwritable), images_dir=str(tmp_path / "images")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_swap_killed_between_its_renames_is_restored_at_the_next_write(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, NOTES) as staging:
        (staging / "notes.txt").write_text("complete")
    # The state a SIGKILL between "rename old aside" and "rename new in" leaves, plus a half-written staging folder.
    os.replace(out, tmp_path / ".out.old-abc123")
    (tmp_path / ".out.staging-def456").mkdir()
    (tmp_path / ".out.staging-def456" / "notes.txt").write_text("half")
    with output_lock(out):
        recover_interrupted(out)
    assert (out / "notes.txt").read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(OutputError, match="already holds a test output"):  # the restored folder is the tool's own again
        with atomic_directory(out, NOTES):
            pass


WRITER = """
import sys
from pathlib import Path
from tirg.checkpoint import atomic_torch_save, load_checkpoint
from tirg.features import _write_cache, load_feature_cache
checkpoint, seed_cache, cache, saved, done = sys.argv[1:]
state = load_checkpoint(checkpoint)
seed = load_feature_cache(seed_cache)
arrays = {name: getattr(seed, name) for name in ("query_features", "gallery_features", "query_sources", "query_targets")}
Path(done).with_suffix(".ready").write_text("ready")
while True:
    _write_cache(Path(cache), arrays, seed.queries, seed.gallery, seed.manifest, overwrite=True)
    atomic_torch_save(state, saved)
    with open(done, "a") as f:
        f.write("written\\n")
"""


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_at_random_moments_leaves_one_complete_version(run, tmp_path):
    seed_cache = compute_and_save(run / CHECKPOINT_NAME, tmp_path / "seed")
    cache, saved, done = tmp_path / "cache", tmp_path / "saved.pth", tmp_path / "done.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    delays = np.random.default_rng(13).uniform(0.0, 0.5, size=3)
    for attempt, delay in enumerate(delays):
        argv = [sys.executable, "-c", WRITER, str(run / CHECKPOINT_NAME), str(seed_cache), str(cache), str(saved), str(done)]
        writes_before = _lines(done)
        writer = subprocess.Popen(argv, env=env)
        # The last kill comes after a complete write by this writer, so it lands while an existing
        # version is being replaced.
        last = attempt == len(delays) - 1
        while not done.with_suffix(".ready").exists() or (last and _lines(done) == writes_before):
            assert writer.poll() is None, "the writer failed"
            time.sleep(0.01)
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        done.with_suffix(".ready").unlink()
        with output_lock(cache):  # what the next write does first (the killed writer's lock is stale)
            recover_interrupted(cache)
        if cache.exists():
            assert load_feature_cache(cache, checkpoint=run / CHECKPOINT_NAME).manifest["num_queries"] > 0
        else:
            assert not done.exists(), "a complete cache was written and then lost"
        if saved.exists():
            assert load_checkpoint(saved)["iteration"] == 2
        else:
            assert not done.exists()
        assert not [p.name for p in tmp_path.glob(".cache.*")], "staging, aside or lock folders left after recovery"


# Run folders


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("tirg.runs.datetime", FrozenClock)
    config = TrainConfig(log_dir=str(tmp_path), comment="_same")
    first, second = (new_run_dir(config.log_dir, config.comment) for _ in range(2))
    third = new_run_dir(tmp_path, "_same")
    assert [first.name, second.name, third.name] == ["20260102-030405_same", "20260102-030405_same-1", "20260102-030405_same-2"]
    assert all(p.is_dir() for p in (first, second, third))


def test_a_hash_run_folder_is_named_as_notebook_04_names_it_after_the_time_stamp(tmp_path, monkeypatch):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("tirg.runs.datetime", FrozenClock)
    assert hash_run_name("CUB", 16) == "CUB_16bits"  # notebook 04's folder under its runs_dir
    assert new_run_dir(tmp_path, f"_{hash_run_name('CUB', 16)}").name == "20260102-030405_CUB_16bits"  # tirg hash train's


def test_stale_temporary_files_of_a_killed_save_are_removed_on_resume(run, tmp_path):
    resumed = tmp_path / "run"
    shutil.copytree(run, resumed)
    stale = resumed / ".latest_checkpoint.pth.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    config = TrainConfig.from_dict(load_checkpoint(resumed / CHECKPOINT_NAME)["config"])
    train(config, resume=resumed)  # at its target already: loads, saves, no training
    assert not stale.exists()
    assert not list(resumed.glob(".*.tmp"))


def _train_argv(dataset_path: Path, log_dir: Path, *extra: str) -> list[str]:
    return ["train", "--dataset_path", str(dataset_path), "--log_dir", str(log_dir), "--comment", "_x", "--num_iters", "3",
            "--batch_size", "4", "--embed_dim", "8", "--image_size", "32", "--device", "cpu", *extra]  # fmt: skip


def test_a_train_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tiny_css, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    assert main(_train_argv(tmp_path / "missing", runs)) == 2
    assert "missing" in capsys.readouterr().err
    assert list(runs.iterdir()) == []

    calls = []

    def failing_loss(terms, weights):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("failed in iteration 2")
        return sum(terms.values())

    monkeypatch.setattr(sys.modules["tirg.training"], "weighted_loss", failing_loss)
    with pytest.raises(RuntimeError, match="iteration 2"):
        main(_train_argv(tiny_css, runs))
    assert list(runs.iterdir()) == []  # its TensorBoard events file went with it
    calls.clear()
    with pytest.raises(RuntimeError, match="iteration 2"):
        main(_train_argv(tiny_css, runs, "--checkpoint_every", "1"))
    (kept,) = runs.iterdir()  # failed after its first checkpoint: kept, so it can be resumed
    assert load_checkpoint(kept / CHECKPOINT_NAME)["iteration"] == 1


def test_a_hash_run_that_fails_leaves_no_folder_and_an_existing_out_is_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["hash", "train", "--dataset_path", str(tmp_path / "missing"), "--binary_bits", "16"]
    assert main(argv) == 2
    assert "missing" in capsys.readouterr().err
    assert list((tmp_path / "runs" / "hash").iterdir()) == []
    assert main([*argv, "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()
    (tmp_path / "given").mkdir()
    assert main([*argv, "--out", str(tmp_path / "given")]) == 2
    assert (tmp_path / "given").is_dir() and not list((tmp_path / "given").iterdir())
    (tmp_path / "given" / "notes.txt").write_text("mine")
    assert main([*argv, "--out", str(tmp_path / "given"), "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err and (tmp_path / "given" / "notes.txt").read_text() == "mine"


def test_main_py_run_with_a_missing_data_folder_leaves_no_run_folder(tmp_path):
    runs = tmp_path / "runs"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--dataset=css", f"--dataset_path={tmp_path / 'missing'}", f"--log_dir={runs}"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert finished.returncode == 2, finished.stderr
    assert "missing" in finished.stderr
    assert not runs.exists() or list(runs.iterdir()) == []
