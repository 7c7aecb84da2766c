"""Every `python main.py ...` line in the seed READMEs (../shared/seeds/*.txt, read from the files) runs
through main.py: data paths pointed at fixture trees in the real formats, iteration counts cut to 2
(epochs to 1) and small images added for speed; everything else as the README writes it."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO_ROOT, _shared_data_dir, root_script
from hashing_fixtures import write_cub

from tirg.checkpoint import load_checkpoint

main_py = root_script("main")


def seed_command_lines() -> list[tuple[str, str]]:
    """(README file name, command line) for each `python ... main.py ...` line, continuation lines joined."""
    shared = _shared_data_dir()
    if shared is None or not (shared.parent / "seeds").is_dir():
        return []
    lines = []
    for readme in sorted((shared.parent / "seeds").glob("*.txt")):
        text = readme.read_text(encoding="utf-8", errors="replace").replace("\\\n", " ")
        lines += [(readme.name, line.strip()) for line in text.splitlines() if re.match(r"\s*python\b.*\bmain\.py\b", line)]
    return lines


COMMANDS = seed_command_lines()


def main_py_argv(line: str) -> list[str]:
    """The arguments after main.py, as the shell would pass them (quotes removed)."""
    tokens = shlex.split(line)
    return tokens[[i for i, token in enumerate(tokens) if token.endswith("main.py")][0] + 1 :]


def option(argv: list[str], name: str) -> str | None:
    for i, token in enumerate(argv):
        if token == name and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return None


def with_options(argv: list[str], values: dict[str, str]) -> list[str]:
    """`argv` with each option in `values` set to its value (replaced where given, else appended)."""
    out, skip = [], False
    for i, token in enumerate(argv):
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name in values:
            skip = "=" not in token and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            continue
        out.append(token)
    return out + [f"{name}={value}" for name, value in values.items()]


@pytest.fixture(scope="module")
def cub_tree(tmp_path_factory):
    return write_cub(tmp_path_factory.mktemp("cub") / "CUB_200_2011", n_classes=4, per_class=4, n_train_per_class=2)


@pytest.fixture
def data_trees(fashion200k_tree, mitstates_tree, fashioniq_tree, cub_tree):
    return {"fashion200k": fashion200k_tree, "mitstates": mitstates_tree, "fashioniq": fashioniq_tree, "cub": cub_tree}


def is_hashing(argv: list[str]) -> bool:
    return option(argv, "--dataset_name") is not None


def fast_argv(argv: list[str], data_path: Path) -> list[str]:
    """The seed line with its data path replaced, 2 iterations (1 epoch of 2 batches) and small images."""
    if is_hashing(argv):
        small = {"--batchSize": "8", "--classes_per_batch": "4", "--num_epochs": "1", "--batches_per_epoch": "2", "--image_size": "16"}
        return with_options(argv, {"--dataset_path": str(data_path), **small})
    small = {"--num_iters": "2", "--batch_size": "4", "--embed_dim": "16", "--image_size": "16", "--device": "cpu"}
    return with_options(argv, {"--dataset_path": str(data_path), **small})


def run_folders(root: Path) -> list[Path]:
    """Every folder under `root` that holds a run (training config written)."""
    return sorted(path.parent for path in root.rglob("config.json"))


def test_the_seed_readmes_hold_the_command_lines_counted_by_hand():
    if not COMMANDS:
        pytest.skip("../shared/seeds is not beside this clone")
    per_readme = {}
    for readme, _ in COMMANDS:
        per_readme[readme] = per_readme.get(readme, 0) + 1
    # TIRG course project 2, TIRG 2, ComposeAE/MQIRTN 5, DNNH 1 (the pants project has none).
    assert sorted(per_readme.values()) == [1, 2, 2, 5]
    assert sum(is_hashing(main_py_argv(line)) for _, line in COMMANDS) == 1


@pytest.mark.parametrize("readme, line", COMMANDS or [pytest.param("", "", marks=pytest.mark.skip("no ../shared/seeds"))])
def test_a_seed_command_line_trains_through_main_py(readme, line, data_trees, tmp_path, monkeypatch, capsys):
    argv = main_py_argv(line)
    dataset = "cub" if is_hashing(argv) else option(argv, "--dataset").lower()
    work = tmp_path / "work"  # the cwd: relative output paths (./runs, ../logs) land in tmp_path
    work.mkdir()
    monkeypatch.chdir(work)
    assert main_py.run(fast_argv(argv, data_trees[dataset])) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    (run,) = run_folders(tmp_path)
    assert Path(report["run_dir"]).resolve() == run.resolve()
    config = json.loads((run / "config.json").read_text())
    if is_hashing(argv):
        assert (config["dataset_name"], config["binary_bits"], config["margin"], config["lr"]) == ("CUB", 64, 20, 0.001)
        assert 0 <= report["final"]["map_all"] <= 1
        return
    checkpoint = load_checkpoint(run / "latest_checkpoint.pth")
    assert checkpoint["iteration"] == 2
    assert run.name.endswith(option(argv, "--comment"))
    if option(argv, "--log_dir"):
        assert run.parent.resolve() == (work / option(argv, "--log_dir")).resolve()
    expected = {"model": option(argv, "--model"), "loss": option(argv, "--loss"), "dataset": option(argv, "--dataset")}
    expected["learning_rate_decay_frequency"] = int(option(argv, "--learning_rate_decay_frequency"))
    if option(argv, "--weight_decay"):
        expected["weight_decay"] = float(option(argv, "--weight_decay"))
    expected["text_encoder"] = "minilm" if option(argv, "--use_bert") == "True" else "lstm"
    expected["use_complete_text_query"] = option(argv, "--use_complete_text_query") == "True"
    assert {key: checkpoint["config"][key] for key in expected} == expected


@pytest.mark.parametrize("readme, line", COMMANDS or [pytest.param("", "", marks=pytest.mark.skip("no ../shared/seeds"))])
def test_a_seed_command_line_without_its_data_fails_naming_it_and_leaves_no_run_folder(readme, line, tmp_path, monkeypatch, capsys):
    argv = main_py_argv(line)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    missing = tmp_path / "not_downloaded"
    assert main_py.run(fast_argv(argv, missing)) == 2
    assert str(missing) in capsys.readouterr().err
    assert run_folders(tmp_path) == []
    # Not even an empty run folder, or its TensorBoard log, is left (a --log_dir parent may stay).
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
    comment = option(argv, "--comment")
    run_named = [
        path for path in tmp_path.rglob("*") if path.is_dir() and (path.name.endswith("bits") or (comment and path.name.endswith(comment)))
    ]
    assert run_named == []


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--dataset=css", "--num_iters=5"], ["train", "--dataset=css", "--num_iters=5"]),
        (["--dataset_name", "CUB", "--margin", "-1"], ["hash", "train", "--dataset_name", "CUB", "--margin", "-1"]),
        # The DNNH original's own data folder flags.
        (
            ["--dataset_name", "Stanford_Dogs", "--datapath_dog", "d"],
            ["hash", "train", "--dataset_name", "Stanford_Dogs", "--datapath_dog", "d"],
        ),
    ],
)
def test_each_reading_is_chosen_by_the_flags_only_it_has(argv, expected):
    assert main_py.route(argv) == expected


def test_lines_that_fit_both_or_neither_reading_are_refused_naming_both(capsys):
    # --dataset_path and --seed are flags of both commands.
    assert main_py.run(["--dataset_path=data", "--seed=1"]) == 2
    error = capsys.readouterr().err
    assert "tirg train" in error and "tirg hash train" in error and "--dataset_path" in error
    assert main_py.run([]) == 2
    assert "tirg train" in capsys.readouterr().err
    # --model is only train's, --binary_bits only hash train's: each reading lacks one of them.
    assert main_py.run(["--model=tirg", "--binary_bits", "16"]) == 2
    error = capsys.readouterr().err
    assert "as `tirg train`, --binary_bits is unknown" in error and "as `tirg hash train`, --model is unknown" in error


def test_the_docs_table_lists_every_seed_command_line():
    if not COMMANDS:
        pytest.skip("../shared/seeds is not beside this clone")
    table = (REPO_ROOT / "docs" / "seed_commands.md").read_text()
    for _, line in COMMANDS:
        assert " ".join(line.split()) in table, line
