import copy

import numpy as np
import torch
import torch.nn.functional as F

from tirg.checkpoint import load_model
from tirg.config import TrainConfig
from tirg.data import image_transform, load_dataset
from tirg.evaluate import query_features_for
from tirg.models import build_model
from tirg.models.image import resnet_feature_map
from tirg.models.lastconv import tile_text
from tirg.runtime import seed_everything
from tirg.text import Vocabulary
from tirg.training import train

VOCABULARY = Vocabulary.build(["add red circle", "remove blue square"])


def _model(embed_dim: int = 16):
    torch.manual_seed(0)
    return build_model("tirg_lastconv", VOCABULARY, embed_dim=embed_dim).eval()


def test_shapes_on_224_images_use_the_7x7_map():
    model = _model()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feature_map = resnet_feature_map(model.img_model, images)
        text = model.extract_text_feature(["add red circle", "remove"])
        modified = model.modify_feature_map(feature_map, text)
        composed = model.compose_img_text(images, ["add red circle", "remove"])
    assert feature_map.shape == (2, 512, 7, 7)
    assert modified.shape == (2, 512, 7, 7)
    assert composed.shape == (2, 16)
    assert model.extract_img_feature(images).shape == (2, 16)
    # The branches see 512 map channels plus the 16 text channels, through 3x3 convolutions.
    assert model.mod2d[1].weight.shape == (528, 528, 3, 3) and model.mod2d[3].weight.shape == (512, 528, 3, 3)
    assert model.mod2d_gate[0].num_features == 528 and model.mod2d_gate[1].padding == (1, 1)


def test_text_is_tiled_to_every_position():
    text = torch.arange(6.0).reshape(2, 3)
    tiled = tile_text(text, 4, 5)
    assert tiled.shape == (2, 3, 4, 5)
    for row in range(4):
        for column in range(5):
            assert torch.equal(tiled[:, :, row, column], text)


def test_modified_map_matches_a_functional_reference():
    model = _model(embed_dim=8)
    with torch.no_grad():
        model.a.copy_(torch.tensor([0.5, 2.0, 3.0, 4.0]))
        for branch in (model.mod2d, model.mod2d_gate):
            branch[0].running_mean.normal_()
            branch[0].running_var.uniform_(0.5, 2.0)
    feature_map, text = torch.randn(3, 512, 3, 2), torch.randn(3, 8)
    # The concatenated input built position by position: map channels, then the text vector.
    joint = torch.empty(3, 520, 3, 2)
    for row in range(3):
        for column in range(2):
            joint[:, :, row, column] = torch.cat([feature_map[:, :, row, column], text], dim=1)

    def branch(layers):
        bn, first, _, second = layers
        x = F.batch_norm(joint, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        return F.conv2d(F.relu(F.conv2d(x, first.weight, first.bias, padding=1)), second.weight, second.bias, padding=1)

    with torch.no_grad():
        expected = 0.5 * torch.sigmoid(branch(model.mod2d_gate)) * feature_map + 2.0 * branch(model.mod2d)
        assert torch.allclose(model.modify_feature_map(feature_map, text), expected, atol=1e-5)
        pooled = expected.mean(dim=(2, 3))
        projected = F.linear(pooled, model.img_model.fc.weight, model.img_model.fc.bias)
        assert torch.allclose(model.compose(feature_map, text), projected, atol=1e-5)


def test_composing_pooled_features_is_refused():
    model = _model()
    try:
        model.compose(torch.randn(2, 16), torch.randn(2, 16))
    except ValueError as error:
        assert "last convolutional map" in str(error)
    else:
        raise AssertionError("compose accepted pooled features")


def test_smoke_training_on_css_then_evaluation_composes_from_images(tiny_css, tmp_path):
    config = TrainConfig(
        dataset_path=str(tiny_css), model="tirg_lastconv", loss="soft_triplet", embed_dim=16, batch_size=4,
        num_iters=3, checkpoint_every=1000, log_every=1, device="cpu",
    )  # fmt: skip
    seed_everything(0)
    initial = build_model("tirg_lastconv", Vocabulary.build(load_dataset("css", tiny_css, "train").texts()), 16)
    seed_everything(0)
    result = train(config, run_dir=tmp_path / "run")
    assert result.iteration == 3 and 0.0 <= result.metrics["R@1"] <= 1.0

    model, checkpoint = load_model(result.checkpoint)
    assert checkpoint["model_name"] == "tirg_lastconv"
    assert not torch.equal(model.mod2d[1].weight, initial.mod2d[1].weight), "training did not update the conv composer"

    testset = copy.copy(load_dataset("css", tiny_css, "test"))
    testset.queries = testset.queries[:5]
    transform = image_transform(None)
    # The cached pooled features are not used: this composer needs each source image's map.
    composed = query_features_for(model, testset, transform, np.zeros((0, 16), np.float32), batch_size=2)
    sources = torch.stack([transform(testset.load_image(query.source)) for query in testset.queries])
    with torch.no_grad():
        direct = model.compose_img_text(sources, [query.text for query in testset.queries])
    assert composed.shape == (5, 16)
    assert torch.allclose(torch.from_numpy(composed), direct, atol=1e-5)
