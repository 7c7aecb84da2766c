"""Checkpoints in the layout of google/tirg's main.py: import, export, and what is refused.

The tests write such files themselves: the original parameter names, an argparse.Namespace
`opt`, torch's pre-1.6 file format, and check the imported model against a functional forward
pass written here from the original-named tensors.
"""

import argparse
import copy
import os
import runpy
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from tirg.checkpoint import atomic_torch_save, load_checkpoint, load_model, make_checkpoint
from tirg.cli import main
from tirg.compat.google_tirg import ORIGINAL_FLAGS, export_checkpoint, import_checkpoint, original_vocabulary
from tirg.data import load_dataset
from tirg.errors import CheckpointError
from tirg.models import build_model
from tirg.text import Vocabulary, tokenize

REPO_ROOT = Path(__file__).resolve().parents[1]


def _first_seen_ids(texts):
    """The 2019 SimpleVocab, written out: '<UNK>' = 0, then each new word gets the next id."""
    ids = {"<UNK>": 0}
    for text in texts:
        for word in tokenize(text):
            if word not in ids:
                ids[word] = len(ids)
    return ids


def _sorted_ids(texts):
    words = sorted({word for text in texts for word in tokenize(text)})
    return {"<UNK>": 0, **{word: i + 1 for i, word in enumerate(words)}}


@pytest.fixture(scope="module")
def css_texts(tiny_css):
    return load_dataset("css", tiny_css, "train").texts()


def _batch_norm(state, prefix, width, generator):
    state[prefix + "weight"] = 1 + 0.1 * torch.randn(width, generator=generator)
    state[prefix + "bias"] = 0.1 * torch.randn(width, generator=generator)
    state[prefix + "running_mean"] = 0.1 * torch.randn(width, generator=generator)
    state[prefix + "running_var"] = 0.5 + torch.rand(width, generator=generator)
    state[prefix + "num_batches_tracked"] = torch.tensor(100)


def _linear(state, prefix, out_features, in_features, generator, kernel=()):
    scale = (in_features * max(1, len(kernel) and kernel[0] * kernel[1])) ** -0.5
    state[prefix + "weight"] = scale * torch.randn(out_features, in_features, *kernel, generator=generator)
    state[prefix + "bias"] = 0.1 * torch.randn(out_features, generator=generator)


def original_state(model: str, vocabulary_size: int, seed: int = 0) -> OrderedDict:
    """A state dict under the names google/tirg's modules give (embed_dim 512)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    resnet = torchvision.models.resnet18().state_dict()
    state = OrderedDict(("img_model." + key, value) for key, value in resnet.items() if not key.startswith("fc."))
    _linear(state, "img_model.fc.0.", 512, 512, generator)
    state["normalization_layer.norm_s"] = torch.tensor([3.5])
    state["text_model.embedding_layer.weight"] = torch.randn(vocabulary_size, 512, generator=generator)
    for name in ("weight_ih_l0", "weight_hh_l0"):
        state["text_model.lstm." + name] = 0.05 * torch.randn(2048, 512, generator=generator)
    for name in ("bias_ih_l0", "bias_hh_l0"):
        state["text_model.lstm." + name] = 0.1 * torch.randn(2048, generator=generator)
    _linear(state, "text_model.fc_output.1.", 512, 512, generator)
    if model in ("tirg", "tirg_lastconv"):
        state["a"] = torch.tensor([0.8, 3.0, 1.0, 1.0])
    if model == "tirg":
        _batch_norm(state, "gated_feature_composer.1.", 1024, generator)
        _linear(state, "gated_feature_composer.3.", 512, 1024, generator)
        _batch_norm(state, "res_info_composer.1.", 1024, generator)
        _linear(state, "res_info_composer.3.", 1024, 1024, generator)
        _linear(state, "res_info_composer.5.", 512, 1024, generator)
    if model == "concat":
        _batch_norm(state, "composer.m.0.", 1024, generator)
        _linear(state, "composer.m.2.", 1024, 1024, generator)
        _batch_norm(state, "composer.m.3.", 1024, generator)
        _linear(state, "composer.m.6.", 512, 1024, generator)
    if model == "tirg_lastconv":
        for branch in ("mod2d.", "mod2d_gate."):
            _batch_norm(state, branch + "0.", 1024, generator)
            _linear(state, branch + "1.", 1024, 1024, generator, kernel=(3, 3))
            _linear(state, branch + "3.", 512, 1024, generator, kernel=(3, 3))
    return state


def original_opt(model: str, dataset: str = "css3d") -> argparse.Namespace:
    """main.py's parse_opt() result, flags as the original spells them."""
    return argparse.Namespace(
        f="", comment="css_" + model, dataset=dataset, dataset_path="../imgcomsearch/CSSDataset/output", model=model,
        embed_dim=512, learning_rate=0.01, learning_rate_decay_frequency=9999999, batch_size=32, weight_decay=1e-6,
        num_iters=210000, loss="soft_triplet", loader_num_workers=4,
    )  # fmt: skip


def write_original(path: Path, model: str, state: dict, opt: argparse.Namespace | None = None, iteration: int = 1234) -> Path:
    checkpoint = {"it": iteration, "opt": opt or original_opt(model), "model_state_dict": state}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)  # the format torch 0.4 wrote
    return path


# --- the reference: the original's forward pass, written from its parameter names -------------


def reference_image_map(state, images):
    body = torchvision.models.resnet18()
    body_state = {key[len("img_model.") :]: value for key, value in state.items() if key.startswith("img_model.")}
    body.load_state_dict({key: value for key, value in body_state.items() if not key.startswith("fc.")}, strict=False)
    body.eval()
    x = body.maxpool(body.relu(body.bn1(body.conv1(images))))
    return body.layer4(body.layer3(body.layer2(body.layer1(x))))


def reference_image(state, image_map):
    return F.linear(image_map.mean(dim=(2, 3)), state["img_model.fc.0.weight"], state["img_model.fc.0.bias"])


def reference_text(state, texts, ids):
    """Embedding, a time-major LSTM from a zero state written out gate by gate, the output at
    each text's last word, then fc_output (its dropout is the identity at inference)."""
    w_ih, w_hh = state["text_model.lstm.weight_ih_l0"], state["text_model.lstm.weight_hh_l0"]
    bias = state["text_model.lstm.bias_ih_l0"] + state["text_model.lstm.bias_hh_l0"]
    outputs = []
    for text in texts:
        h, c = torch.zeros(512), torch.zeros(512)
        for word in tokenize(text):
            x = state["text_model.embedding_layer.weight"][ids.get(word, 0)]
            i, f, g, o = (w_ih @ x + w_hh @ h + bias).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return F.linear(torch.stack(outputs), state["text_model.fc_output.1.weight"], state["text_model.fc_output.1.bias"])


def _bn(state, prefix, x):
    statistics = state[prefix + "running_mean"], state[prefix + "running_var"]
    return F.batch_norm(x, *statistics, state[prefix + "weight"], state[prefix + "bias"], training=False)


def _fc(state, prefix, x):
    return F.linear(x, state[prefix + "weight"], state[prefix + "bias"])


def _conv(state, prefix, x):
    return F.conv2d(x, state[prefix + "weight"], state[prefix + "bias"], padding=1)


def reference_compose(model, state, image_map, text):
    if model == "tirg_lastconv":
        both = torch.cat([image_map, text[:, :, None, None].repeat(1, 1, *image_map.shape[2:])], dim=1)

        def branch(prefix):
            return _conv(state, prefix + "3.", F.relu(_conv(state, prefix + "1.", _bn(state, prefix + "0.", both))))

        modified = state["a"][0] * torch.sigmoid(branch("mod2d_gate.")) * image_map + state["a"][1] * branch("mod2d.")
        return reference_image(state, modified)
    image = reference_image(state, image_map)
    both = torch.cat([image, text], dim=1)
    if model == "tirg":
        gate = _fc(state, "gated_feature_composer.3.", F.relu(_bn(state, "gated_feature_composer.1.", both)))
        hidden = F.relu(_fc(state, "res_info_composer.3.", F.relu(_bn(state, "res_info_composer.1.", both))))
        return state["a"][0] * torch.sigmoid(gate) * image + state["a"][1] * _fc(state, "res_info_composer.5.", hidden)
    if model == "concat":
        hidden = F.relu(_bn(state, "composer.m.3.", _fc(state, "composer.m.2.", F.relu(_bn(state, "composer.m.0.", both)))))
        return _fc(state, "composer.m.6.", hidden)
    return image if model == "imgonly" else text


# --- import ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["tirg", "concat", "tirg_lastconv", "imgonly", "textonly"])
def test_imported_model_computes_what_the_original_parameters_compute(model_name, tiny_css, css_texts, tmp_path):
    ids = _first_seen_ids(css_texts)
    state = original_state(model_name, len(ids))
    src = write_original(tmp_path / "checkpoint_css3d.pth", model_name, state)
    arguments = ["--dataset", "css", "--dataset_path", str(tiny_css), "--out", str(tmp_path / "imported.pth")]
    assert main(["import-checkpoint", str(src), *arguments]) == 0

    model, checkpoint = load_model(tmp_path / "imported.pth")
    assert checkpoint["model_name"] == model_name and checkpoint["iteration"] == 1234
    assert checkpoint["vocabulary"] == list(ids)  # first-seen order, the default
    assert checkpoint["config"]["dataset"] == "css" and checkpoint["config"]["num_iters"] == 210000
    assert model.normalization_layer.scale.item() == 3.5
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # a 2x2 last map
    texts = [css_texts[-1], "make the zebra " + css_texts[5]]  # "zebra" is unknown: id 0
    with torch.no_grad():
        image_map, text = reference_image_map(state, images), reference_text(state, texts, ids)
        assert torch.allclose(model.extract_img_feature(images), reference_image(state, image_map), atol=1e-4)
        assert torch.allclose(model.extract_text_feature(texts), text, atol=1e-5)
        assert torch.allclose(model.compose_img_text(images, texts), reference_compose(model_name, state, image_map, text), atol=1e-4)


def test_vocabulary_order_decides_which_row_each_word_reads(tiny_css, css_texts, tmp_path):
    first_seen, in_order = _first_seen_ids(css_texts), _sorted_ids(css_texts)
    assert list(first_seen) != list(in_order), "the fixture's texts must not already be in sorted order"
    state = original_state("textonly", len(first_seen))
    src = write_original(tmp_path / "c.pth", "textonly", state)
    texts = css_texts[:4]
    for order, ids in (("first-seen", first_seen), ("sorted", in_order)):
        checkpoint = import_checkpoint(src, tmp_path / f"{order}.pth", tiny_css, order, dataset="css")
        assert checkpoint["vocabulary"] == list(ids) and checkpoint["imported_from"]["vocabulary_order"] == order
        model, _ = load_model(tmp_path / f"{order}.pth")
        with torch.no_grad():
            assert torch.allclose(model.extract_text_feature(texts), reference_text(state, texts, ids), atol=1e-5)
    assert original_vocabulary(["b a", "c a"], "first-seen").tokens == ["<UNK>", "b", "a", "c"]
    assert original_vocabulary(["b a", "c a"], "sorted").tokens == ["<UNK>", "a", "b", "c"]


def test_explicit_texts_and_the_checkpoints_own_dataset_name(tmp_path):
    texts = ["Make it RED!", "make it blue", "remove it"]
    state = original_state("textonly", len(_first_seen_ids(texts)))
    src = write_original(tmp_path / "c.pth", "textonly", state)
    checkpoint = import_checkpoint(src, tmp_path / "out.pth", "data/css_original", "first-seen", texts=texts)
    assert checkpoint["vocabulary"] == ["<UNK>", "make", "it", "red", "blue", "remove"]
    assert checkpoint["config"]["dataset"] == "css_original"  # opt.dataset css3d is TIRG's own CSS release


def test_vocabulary_size_mismatch_is_refused_with_both_sizes_and_the_cause(tiny_css, css_texts, tmp_path):
    size = len(_first_seen_ids(css_texts))
    src = write_original(tmp_path / "checkpoint_fashion200k.pth", "tirg", original_state("tirg", size + 3))
    dst = tmp_path / "out.pth"
    with pytest.raises(CheckpointError) as raised:
        import_checkpoint(src, dst, tiny_css, "first-seen", dataset="css")
    message = str(raised.value)
    assert f"checkpoint_fashion200k.pth: its word embedding has {size + 3} rows" in message
    assert f"has {size} tokens" in message
    assert "TIRG issue #12" in message and "listed in the same order" in message
    assert not dst.exists()


# --- export ----------------------------------------------------------------------------------


def _native(tmp_path: Path, vocabulary: Vocabulary, name: str = "tirg", dataset_path: str = "data/css") -> Path:
    torch.manual_seed(0)
    model = build_model(name, vocabulary, embed_dim=512)
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if buffer_name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    config = {"dataset": "css", "dataset_path": str(dataset_path), "model": name, "embed_dim": 512, "num_iters": 77, "learning_rate": 0.02}
    path = tmp_path / "native.pth"
    atomic_torch_save(make_checkpoint(model, name, config, iteration=77), path)
    return path


def test_export_then_import_is_the_identity(tiny_css, css_texts, tmp_path):
    src = _native(tmp_path, Vocabulary.build(css_texts), dataset_path=tiny_css)
    assert main(["export-checkpoint", str(src), "--out", str(tmp_path / "original.pth")]) == 0
    exported = tmp_path / "original.pth"
    assert not zipfile.is_zipfile(exported)  # torch's pre-1.6 format, readable by the original's torch versions
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(exported, weights_only=True)
    assert set(raw) == {"it", "opt", "model_state_dict", "vocabulary"} and raw["it"] == 77
    assert isinstance(raw["opt"], argparse.Namespace) and raw["opt"].model == "tirg" and raw["opt"].learning_rate == 0.02
    names = {
        "text_model.embedding_layer.weight",
        "img_model.fc.0.weight",
        "gated_feature_composer.1.running_mean",
        "res_info_composer.5.bias",
    }
    assert names <= set(raw["model_state_dict"])
    assert raw["model_state_dict"]["normalization_layer.norm_s"].shape == (1,)

    import_checkpoint(exported, tmp_path / "back.pth", tiny_css, "sorted")
    before, after = load_checkpoint(src), load_checkpoint(tmp_path / "back.pth")
    assert after["vocabulary"] == before["vocabulary"] and after["iteration"] == 77 and after["model_name"] == "tirg"
    assert before["model"].keys() == after["model"].keys()
    for key, value in before["model"].items():
        assert torch.equal(value, after["model"][key]), key
    for flag in ORIGINAL_FLAGS:
        assert after["config"][flag] == before["config"].get(flag, after["config"][flag]), flag


def test_first_seen_export_reorders_rows_and_round_trips(tiny_css, css_texts, tmp_path):
    src = _native(tmp_path, Vocabulary.build(css_texts), name="textonly")
    arguments = ["--out", str(tmp_path / "o.pth"), "--vocabulary-order", "first-seen", "--dataset_path", str(tiny_css)]
    assert main(["export-checkpoint", str(src), *arguments]) == 0
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(tmp_path / "o.pth", weights_only=True)
    first_seen = _first_seen_ids(css_texts)
    assert raw["vocabulary"] == list(first_seen)
    model, _ = load_model(src)
    # The 2019 code reads row first_seen[word] for a word; it must hold that word's trained row.
    for word in ("make", list(first_seen)[-1]):
        trained_row = model.text_model.embedding.weight[model.vocabulary.encode(word)[0]]
        assert torch.equal(raw["model_state_dict"]["text_model.embedding_layer.weight"][first_seen[word]], trained_row)
    # Imported in the other order, the file's own word list catches the mistake.
    with pytest.raises(CheckpointError, match=r"o\.pth lists the vocabulary its rows follow.*differs at id 1"):
        import_checkpoint(tmp_path / "o.pth", tmp_path / "wrong.pth", tiny_css, "sorted", dataset="css")
    assert not (tmp_path / "wrong.pth").exists()
    back = import_checkpoint(tmp_path / "o.pth", tmp_path / "back.pth", tiny_css, "first-seen", dataset="css")
    reimported, _ = load_model(tmp_path / "back.pth")
    with torch.no_grad():
        assert torch.allclose(reimported.extract_text_feature(css_texts[:6]), model.extract_text_feature(css_texts[:6]), atol=1e-6)
    assert back["vocabulary"] == list(first_seen)


def test_export_refuses_what_the_original_cannot_load(css_texts, tmp_path):
    src = _native(tmp_path, Vocabulary.build(css_texts), name="imgonly")
    checkpoint = load_checkpoint(src)
    atomic_torch_save({**checkpoint, "model_name": "composeAE"}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth holds a 'composeAE' model"):
        export_checkpoint(tmp_path / "other.pth", tmp_path / "out.pth")
    small = build_model("imgonly", Vocabulary.build(css_texts), embed_dim=16)
    atomic_torch_save(make_checkpoint(small, "imgonly", {"embed_dim": 16}, 1), tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match="small.pth has embed_dim 16"):
        export_checkpoint(tmp_path / "small.pth", tmp_path / "out.pth")
    with pytest.raises(CheckpointError, match="training texts give"):
        export_checkpoint(src, tmp_path / "out.pth", "first-seen", texts=["entirely different words"])
    assert not (tmp_path / "out.pth").exists()


# --- bad input: clear errors naming the file, nothing written -----------------------------------


def _refused(src: Path, dst: Path, pattern: str, tiny_css) -> None:
    with pytest.raises(CheckpointError, match=pattern):
        import_checkpoint(src, dst, tiny_css, "first-seen", dataset="css")
    assert not dst.exists()
    assert [p.name for p in dst.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_files_that_are_not_original_checkpoints_are_refused(tiny_css, css_texts, tmp_path):
    dst = tmp_path / "out" / "imported.pth"
    dst.parent.mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    _refused(tmp_path / "notes.txt", dst, r"notes\.txt is not a readable checkpoint", tiny_css)
    _refused(tmp_path / "absent.pth", dst, "checkpoint not found", tiny_css)

    state = original_state("tirg", len(_first_seen_ids(css_texts)))
    data = write_original(tmp_path / "full.pth", "tirg", state).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "cut.pth", dst, r"cut\.pth is not a readable checkpoint", tiny_css)
    torch.save({"it": 1, "opt": original_opt("tirg"), "model_state_dict": state}, tmp_path / "zip.pth")
    zipped = (tmp_path / "zip.pth").read_bytes()
    (tmp_path / "cutzip.pth").write_bytes(zipped[: len(zipped) // 3])
    _refused(tmp_path / "cutzip.pth", dst, r"cutzip\.pth is not a readable checkpoint", tiny_css)

    torch.save({"weights": state}, tmp_path / "other_dict.pth")
    lacks = r"other_dict\.pth is not a checkpoint of TIRG's main\.py: it lacks \['opt', 'model_state_dict'\]"
    _refused(tmp_path / "other_dict.pth", dst, lacks, tiny_css)
    native = _native(tmp_path, Vocabulary.build(css_texts))
    _refused(native, dst, r"native\.pth is already a tirg checkpoint", tiny_css)


def test_checkpoints_of_other_models_are_refused(tiny_css, css_texts, tmp_path):
    dst = tmp_path / "imported.pth"
    size = len(_first_seen_ids(css_texts))
    state = original_state("tirg", size)
    composeae = write_original(tmp_path / "composeae.pth", "tirg", state, original_opt("composeAE"))
    _refused(composeae, dst, r"composeae\.pth holds a model 'composeAE' \(opt\.model\)", tiny_css)
    unnamed = argparse.Namespace(**{key: value for key, value in vars(original_opt("tirg")).items() if key != "model"})
    _refused(write_original(tmp_path / "unnamed.pth", "tirg", state, unnamed), dst, r"unnamed\.pth: its opt names no model", tiny_css)
    # Says tirg, holds a concat model's weights.
    mislabelled = write_original(tmp_path / "mislabelled.pth", "tirg", original_state("concat", size), original_opt("tirg"))
    names = r"mislabelled\.pth: its weights are not those of the original 'tirg' model.*missing \['a', 'gated_feature_composer.*"
    _refused(mislabelled, dst, names + r"unexpected \['composer\.m\.0", tiny_css)
    small = copy.copy(state)
    small["text_model.fc_output.1.weight"] = torch.zeros(512, 256)
    narrow = write_original(tmp_path / "narrow.pth", "tirg", small)
    _refused(narrow, dst, r"narrow\.pth: text_model\.fc_output\.1\.weight has shape \(512, 256\)", tiny_css)


def test_a_pickled_call_is_refused_without_running_it(tiny_css, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"it": 1, "opt": Payload(), "model_state_dict": {}}, tmp_path / "evil.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as raised:
        import_checkpoint(tmp_path / "evil.pth", tmp_path / "out.pth", tiny_css, "first-seen", dataset="css")
    assert "evil.pth" in str(raised.value) and "system, which is refused" in str(raised.value)
    assert "weights_only=False" not in str(raised.value)
    assert not marker.exists() and not (tmp_path / "out.pth").exists()


def test_cli_reports_refusals_and_keeps_an_existing_destination(tiny_css, css_texts, tmp_path, capsys):
    src = write_original(tmp_path / "c.pth", "textonly", original_state("textonly", len(_first_seen_ids(css_texts)) + 1))
    dst = tmp_path / "kept.pth"
    dst.write_bytes(b"previous")
    arguments = ["import-checkpoint", str(src), "--dataset", "css", "--dataset_path", str(tiny_css), "--out", str(dst)]
    assert main(arguments) == 2
    assert "kept.pth exists; pass --overwrite" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == 2
    assert "c.pth: its word embedding has" in capsys.readouterr().err
    assert dst.read_bytes() == b"previous"
    assert main([*arguments[:-2], "--out", str(tmp_path / "x.pth"), "--dataset_option", "nonsense"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_fashion200k_import_rebuilds_the_vocabulary_in_label_file_listing_order(tmp_path, capsys):
    from fixture_trees import write_fashion200k

    root = write_fashion200k(tmp_path / "fashion200k", images=False)
    listed = load_dataset("fashion200k", root, "train", label_file_order="listdir").texts()
    ids = _first_seen_ids(listed)
    state = original_state("textonly", len(ids))
    src = write_original(tmp_path / "c.pth", "textonly", state, original_opt("textonly", dataset="fashion200k"))
    dst = tmp_path / "imported.pth"
    arguments = ["import-checkpoint", str(src), "--dataset_path", str(root), "--out", str(dst)]
    assert main([*arguments, "--dataset_option", "label_file_order=listdir"]) == 0
    checkpoint = load_checkpoint(dst)
    assert checkpoint["vocabulary"] == list(ids) and checkpoint["config"]["dataset"] == "fashion200k"
    model, _ = load_model(dst)
    with torch.no_grad():
        assert torch.allclose(model.extract_text_feature(listed[:3]), reference_text(state, listed[:3], ids), atol=1e-5)


# --- main.py: the original command line ------------------------------------------------------


def test_main_py_runs_an_original_command_line(tiny_css, tmp_path, monkeypatch):
    command = [
        "main.py", "--dataset=css", f"--dataset_path={tiny_css}", "--num_iters=2", "--model=tirg", "--loss=soft_triplet",
        "--learning_rate_decay_frequency=50000", "--comment=_shim", f"--log_dir={tmp_path}", "--batch_size=4",
        "--embed_dim=16", "--image_size=32", "--device=cpu",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", command)
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(REPO_ROOT / "main.py"), run_name="__main__")
    assert exited.value.code == 0
    (run,) = [path for path in tmp_path.iterdir() if path.name.endswith("_shim")]
    checkpoint = load_checkpoint(run / "latest_checkpoint.pth")
    assert checkpoint["iteration"] == 2
    assert checkpoint["config"]["learning_rate_decay_frequency"] == 50000 and checkpoint["config"]["model"] == "tirg"
