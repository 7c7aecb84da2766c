import json
import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
import torch
from torch import nn

from tirg.checkpoint import CHECKPOINT_NAME, atomic_torch_save, check_text_encoder, load_checkpoint, load_model, make_checkpoint
from tirg.cli import main
from tirg.cli.flags import parse_bool
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.data.complete_text import complete_text_queries
from tirg.errors import CheckpointError
from tirg.losses import DEFAULT_LOSS_WEIGHTS
from tirg.models import MODELS, build_model
from tirg.models.composeae import ComplexProjection, ComposeAE, RealSpaceConcatAE, complex_rotation
from tirg.models.image import build_image_encoder
from tirg.optimization import make_optimizer
from tirg.runtime import seed_everything
from tirg.text import Vocabulary
from tirg.training import train

VOCABULARY = Vocabulary.build(["add red cube", "remove blue sphere"])


class FixedTextEncoder(nn.Module):
    """A stand-in pretrained encoder: a fixed random vector per string, `out_dim` wide."""

    name = "fixed"

    def __init__(self, out_dim: int, seed: int = 0):
        super().__init__()
        self.out_dim = out_dim
        self.seed = seed

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [torch.randn(self.out_dim, generator=torch.Generator().manual_seed(self.seed + sum(map(ord, t)))) for t in texts]
        return torch.stack(rows)


def test_registry_accepts_the_original_spellings():
    assert isinstance(build_model("composeAE", VOCABULARY, 8), ComposeAE)
    assert isinstance(build_model("RealSpaceConcatAE", VOCABULARY, 8), RealSpaceConcatAE)
    assert {"composeae", "realspaceconcatae"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model 'composeXY'"):
        build_model("composeXY", VOCABULARY, 8)


def test_composeae_layer_shapes_at_the_paper_size_and_initial_weights():
    """512-d images and 768-d text (BERT-Base) give the original's layer sizes."""
    model = build_model("composeAE", VOCABULARY, 512, text_encoder=FixedTextEncoder(768))
    assert model.a.tolist() == [1.0, 10.0, 1.0, 1.0]
    projection = model.linear_projection
    assert [type(m).__name__ for m in projection.image_features] == ["BatchNorm1d", "Linear", "Dropout", "ReLU", "Linear"]
    assert projection.image_features[2].p == 0.5
    assert projection.text_features[0].num_features == 768 and projection.text_features[1].in_features == 768
    assert model.rho[0].num_features == 1024 and model.rho[2].in_features == 1024
    assert model.rho_conv.conv.in_channels == 5 and model.rho_conv.conv.out_channels == 64
    assert model.rho_conv.pool.output_size == 16 and model.rho_conv.mapping[0].num_features == 1024
    assert model.text_decoder[2].out_features == 768 and model.text_decoder[4].out_features == 768
    assert model.image_decoder[4].out_features == 512
    # The two complex projections share no weights.
    assert model.linear_projection.image_features[1].weight is not model.conv_projection.image_features[1].weight

    concat = build_model("RealSpaceConcatAE", VOCABULARY, 512, text_encoder=FixedTextEncoder(768))
    assert concat.a.tolist() == [1.0, 10.0, 1.0, 1.0]
    assert concat.linear_mapping[0].num_features == 1280
    assert concat.conv.in_channels == 1 and concat.pool.output_size == 20 and concat.conv_mapping[0].num_features == 1280


@pytest.mark.parametrize("name", ["composeAE", "RealSpaceConcatAE", "tirg", "concat"])
def test_output_shapes_with_text_features_of_another_size(name):
    model = build_model(name, VOCABULARY, 16, text_encoder=FixedTextEncoder(24)).eval()
    assert model.text_embed_dim == 24
    texts = ["add red cube", "remove blue sphere", "x"]
    assert model.extract_text_feature(texts).shape == (3, 24)
    assert model.compose_img_text(torch.randn(3, 3, 16, 16), texts).shape == (3, 16)


def test_rotation_is_complex_multiplication_and_the_conjugate_inverts_it():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    delta = 3 * torch.randn(5, 7, generator=generator, dtype=torch.float64)
    real, imaginary = complex_rotation(x, delta)
    expected = torch.complex(x, torch.zeros_like(x)) * torch.exp(1j * delta)
    torch.testing.assert_close(torch.complex(real, imaginary), expected)

    rotated = torch.complex(real, imaginary)
    back_real, back_imaginary = complex_rotation(torch.ones_like(x), delta, conjugate=True)
    undone = rotated * torch.complex(back_real, back_imaginary)  # times exp(-i delta)
    torch.testing.assert_close(undone, torch.complex(x, torch.zeros_like(x)))


def test_projection_conjugate_flips_only_the_imaginary_part():
    projection = ComplexProjection(8, 6).eval()
    z, q = torch.randn(4, 8), torch.randn(4, 6)
    plain, conjugate = projection(z, q), projection(z, q, conjugate=True)
    torch.testing.assert_close(conjugate.real, plain.real)
    torch.testing.assert_close(conjugate.imaginary, -plain.imaginary)
    torch.testing.assert_close(plain.real, plain.x1 * torch.cos(plain.delta))


@pytest.mark.parametrize("batch", [1, 33, 64])
def test_any_batch_size_composes_on_cpu(batch):
    """The original sliced a 32 x 1 CUDA constant, so it failed above 32 and without a GPU."""
    model = build_model("composeAE", VOCABULARY, 16).eval()
    z, q = torch.randn(batch, 16), torch.randn(batch, 16)
    assert model.compose(z, q).shape == model.compose(z, q, conjugate=True).shape == (batch, 16)


@pytest.mark.parametrize("batch", [33, 64])
def test_training_loss_with_the_symmetry_term_runs_above_batch_32(batch):
    seed_everything(0)
    model = build_model("composeAE", VOCABULARY, 16)
    images = torch.randn(batch, 3, 8, 8)
    texts = ["add red cube", "remove blue sphere"] * (batch // 2) + ["x"] * (batch % 2)
    terms = model.compute_loss_terms(images, texts, images.flip(0), "batch_based_classification", torch.Generator())
    assert set(terms) == {"base", "image_reconstruction", "text_reconstruction", "rotational_symmetry"}
    model.compute_loss(images, texts, images.flip(0), "soft_triplet", torch.Generator().manual_seed(1)).backward()
    assert model.a.grad is not None and model.linear_projection.text_features[1].weight.grad is not None


class LookupText(nn.Module):
    def __init__(self, rows: dict[str, list[float]]):
        super().__init__()
        self.rows = rows

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.rows[t] for t in texts])


def _hand_model(name: str, calls: list) -> nn.Module:
    """A 2-d model whose features are the inputs themselves, with a composition and decoders fixed by hand."""
    model = build_model(name, VOCABULARY, 2, text_encoder=FixedTextEncoder(3))
    model.img_model = nn.Identity()
    model.text_model = LookupText({"p": [1.0, 0.0, 0.0], "q": [0.0, 0.0, 1.0]})
    theta, back = torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]])

    def compose(image_features, text_features, conjugate=False):
        calls.append((image_features.clone(), text_features.clone(), conjugate))
        return back if conjugate else theta

    model.compose = compose
    model.image_decoder = nn.Identity()
    model.text_decoder = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.text_decoder.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    return model


def test_loss_terms_against_hand_computed_values():
    calls = []
    model = _hand_model("composeAE", calls)
    source, target = torch.tensor([[3.0, 0.0], [0.0, 5.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    terms = model.compute_loss_terms(source, ["p", "q"], target, "batch_based_classification", torch.Generator())
    # base: normalised (scale 4) theta = 4I, target = 4[[0,1],[1,0]]; logits [[0,16],[16,0]]; the right class scores 0.
    assert terms["base"].item() == pytest.approx(math.log(1 + math.exp(16)))
    # image: mean((theta - source)^2) = (1 + 4) / 4.
    assert terms["image_reconstruction"].item() == pytest.approx(1.25)
    # text: decoded [[2,0,2],[0,3,3]] vs q [[1,0,0],[0,0,1]]: squares 1+0+4+0+9+4 over 6.
    assert terms["text_reconstruction"].item() == pytest.approx(3.0)
    # symmetry: normalised back [[2.83, 2.83], [0, 4]] against normalised source 4I: logits [[11.3, 11.3], [0, 16]].
    symmetry = (math.log(2) + math.log(1 + math.exp(-16))) / 2
    assert terms["rotational_symmetry"].item() == pytest.approx(symmetry, rel=1e-5)
    # The symmetry term composes the raw target with the same text and the conjugate rotation.
    (z, q, first_conjugate), (t, q2, second_conjugate) = calls
    assert torch.equal(z, source) and not first_conjugate
    assert torch.equal(t, target) and torch.equal(q2, q) and second_conjugate

    total = model.compute_loss(source, ["p", "q"], target, "batch_based_classification", torch.Generator())
    expected = math.log(1 + math.exp(16)) + 0.1 * 1.25 + 0.1 * 3.0 + 0.01 * symmetry
    assert total.item() == pytest.approx(expected)
    halved = {**DEFAULT_LOSS_WEIGHTS, "text_reconstruction": 0.05}
    assert model.compute_loss(source, ["p", "q"], target, "batch_based_classification", torch.Generator(), halved).item() == pytest.approx(
        expected - 0.15
    )


def test_real_space_concat_has_no_symmetry_term():
    calls = []
    model = _hand_model("RealSpaceConcatAE", calls)
    terms = model.compute_loss_terms(torch.eye(2), ["p", "q"], torch.eye(2), "batch_based_classification", torch.Generator())
    assert set(terms) == {"base", "image_reconstruction", "text_reconstruction"} and len(calls) == 1


class RecordingWriter:
    def __init__(self):
        self.scalars: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag, value, step):
        self.scalars.setdefault(tag, []).append((step, float(value)))


def smoke_config(dataset_path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset_path=str(dataset_path), model="composeAE", loss="batch_based_classification", embed_dim=16,
        batch_size=4, num_iters=3, image_size=32, checkpoint_every=1000, log_every=1, device="cpu",
    )  # fmt: skip
    return replace(config, **changes)


def test_composeae_trains_end_to_end_and_logs_each_term(tiny_css, tmp_path):
    seed_everything(0)
    writer = RecordingWriter()
    result = train(smoke_config(tiny_css), run_dir=tmp_path / "run", writer=writer)
    assert result.iteration == 3 and 0.0 <= result.metrics["R@1"] <= result.metrics["R@10"] <= 1.0
    names = ["batch_based_classification", "image_reconstruction", "text_reconstruction", "rotational_symmetry"]
    for step in range(3):
        base, image, text, symmetry = (writer.scalars[f"train/{name}"][step][1] for name in names)
        total = writer.scalars["train/total_loss"][step][1]
        assert total == pytest.approx(base + 0.1 * image + 0.1 * text + 0.01 * symmetry, rel=1e-5)

    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["text_encoder"] == "lstm" and checkpoint["text_embed_dim"] == 16
    model, _ = load_model(result.checkpoint)
    assert isinstance(model, ComposeAE)


def test_text_dim_that_does_not_match_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    atomic_torch_save(make_checkpoint(build_model("composeAE", VOCABULARY, 16), "composeAE", {"embed_dim": 16}, 0), path)
    wider = build_model("composeAE", VOCABULARY, 16, text_encoder=FixedTextEncoder(24))
    with pytest.raises(CheckpointError, match=r"16-d text features \(text encoder 'lstm'\), but .*'fixed' gives 24-d"):
        check_text_encoder(load_checkpoint(path), path, wider)
    check_text_encoder(load_checkpoint(path), path, build_model("composeAE", VOCABULARY, 16))


def test_missing_text_encoder_folder_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointError, match=f"text encoder folder not found: {missing}"):
        build_model("tirg", VOCABULARY, 16, text_encoder=str(missing))
    assert main(["train", "--dataset_path", str(tmp_path), "--text_encoder", str(missing), "--log_dir", str(tmp_path / "runs")]) == 2


def test_complete_text_queries_use_the_target_caption(tiny_css):
    dataset = load_dataset("css", tiny_css, "train")
    completed = complete_text_queries(dataset)
    assert [p.text for p in completed.pairs] == [dataset.captions[p.target] for p in dataset.pairs]
    assert [q.text for q in completed.queries] == [q.target_caption for q in dataset.queries]
    assert [(p.source, p.target) for p in completed.pairs] == [(p.source, p.target) for p in dataset.pairs]
    assert dataset.pairs[0].text != completed.pairs[0].text  # the original is left as it was


def test_complete_text_queries_cover_pairs_drawn_on_the_fly(tmp_path):
    import pickle

    import numpy as np
    from fixture_trees import write_fashion200k

    dataset = load_dataset("fashion200k", write_fashion200k(tmp_path / "f200k", images=False), "train")
    completed = pickle.loads(pickle.dumps(complete_text_queries(dataset)))  # as a loader worker receives it
    for item in range(len(dataset.training_sources())):
        drawn = dataset.training_pair(item, np.random.default_rng([0, 0, item]))
        pair = completed.training_pair(item, np.random.default_rng([0, 0, item]))
        assert (pair.source, pair.target) == (drawn.source, drawn.target)
        assert pair.text == dataset.captions[drawn.target] != drawn.text


def test_cli_trains_real_space_concat_with_complete_text_queries(tiny_css, tmp_path, capsys):
    arguments = [
        "train", "--dataset_path", str(tiny_css), "--model=RealSpaceConcatAE", "--use_complete_text_query", "True",
        "--loss", "batch_based_classification", "--num_iters", "2", "--batch_size", "4", "--embed_dim", "16",
        "--image_size", "32", "--log_dir", str(tmp_path / "runs"), "--device", "cpu",
    ]  # fmt: skip
    assert main(arguments) == 0
    run_dir = json.loads(capsys.readouterr().out)["run_dir"]
    checkpoint = load_checkpoint(f"{run_dir}/{CHECKPOINT_NAME}")
    assert checkpoint["config"]["use_complete_text_query"] is True and checkpoint["model_name"] == "RealSpaceConcatAE"
    # The vocabulary comes from the complete captions, not the modification texts.
    trainset = load_dataset("css", tiny_css, "train")
    assert checkpoint["vocabulary"] == Vocabulary.build(trainset.captions[p.target] for p in trainset.pairs).tokens


def test_boolean_flags_read_true_and_false_strings():
    assert parse_bool("True") is True and parse_bool("false") is False
    with pytest.raises(Exception, match="expected True or False"):
        parse_bool("maybe")


def test_vit_backbone_through_the_encoder_interface():
    torch.manual_seed(0)
    encoder = build_image_encoder("vit_b_16", 8, image_size=32).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 8)
        assert encoder(torch.randn(2, 3, 48, 48)).shape == (2, 8)  # resized to the size it was built for
    assert isinstance(encoder.fc, nn.Linear) and encoder.fc.in_features == 768
    with pytest.raises(ValueError, match="divisible by its patch size 16"):
        build_image_encoder("vit_b_16", 8, image_size=40)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_image_encoder("vgg", 8)


def test_vit_backbone_in_a_model_gets_the_optimizer_groups():
    model = build_model("composeAE", VOCABULARY, 8, backbone="vit_b_16", image_size=32)
    fc, body, rest = make_optimizer(model, TrainConfig()).param_groups
    assert {id(p) for p in fc["params"]} == {id(p) for p in model.img_model.fc.parameters()}
    assert len(body["params"]) == len(list(model.img_model.body.parameters()))
    assert len(fc["params"]) + len(body["params"]) + len(rest["params"]) == len(list(model.parameters()))
