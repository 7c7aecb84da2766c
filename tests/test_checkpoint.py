from pathlib import Path

import pytest
import torch

import tirg.checkpoint as checkpoint_module
from tirg.checkpoint import atomic_torch_save, check_compatible, load_checkpoint, load_model, make_checkpoint
from tirg.errors import CheckpointError
from tirg.models import build_model
from tirg.text import Vocabulary

VOCABULARY = Vocabulary.build(["add red circle", "remove blue square"])
CONFIG = {"embed_dim": 16, "dataset": "css"}


def _saved_model(path: Path, name: str = "tirg") -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, VOCABULARY, embed_dim=16)
    atomic_torch_save(make_checkpoint(model, name, CONFIG, iteration=7), path)
    return model.eval()


def test_round_trip_restores_weights_vocabulary_and_outputs(tmp_path):
    model = _saved_model(tmp_path / "c.pth")
    loaded, checkpoint = load_model(tmp_path / "c.pth")
    assert checkpoint["iteration"] == 7 and loaded.vocabulary == VOCABULARY
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.compose_img_text(images, ["add red", "remove"]), loaded.compose_img_text(images, ["add red", "remove"]))
    # Loads with weights_only=True: no pickled code, only tensors and plain data.
    torch.load(tmp_path / "c.pth", weights_only=True)


def test_mismatched_model_or_vocabulary_is_refused_naming_the_file(tmp_path):
    _saved_model(tmp_path / "c.pth")
    checkpoint = load_checkpoint(tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"c\.pth holds a 'tirg' model, but 'concat'"):
        check_compatible(checkpoint, tmp_path / "c.pth", "concat", VOCABULARY)
    other = Vocabulary.build(["add red circle", "remove blue square", "zebra"])
    with pytest.raises(CheckpointError, match=r"c\.pth was trained with a vocabulary of 7 tokens, the current one has 8.*zebra"):
        check_compatible(checkpoint, tmp_path / "c.pth", "tirg", other)


def test_foreign_and_truncated_files_are_refused(tmp_path):
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pth is not a readable tirg checkpoint"):
        load_checkpoint(tmp_path / "text.pth")
    torch.save({"model_state_dict": {}}, tmp_path / "original.pth")
    with pytest.raises(CheckpointError, match="original.pth is not a tirg checkpoint"):
        load_checkpoint(tmp_path / "original.pth")
    _saved_model(tmp_path / "c.pth")
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pth")


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest_checkpoint.pth"
    _saved_model(path)
    before = path.read_bytes()

    def dies_halfway(obj, f):
        f.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"anything": 1}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["latest_checkpoint.pth"]
