import pytest
import torch

from tirg.models import MODELS, build_model
from tirg.text import Vocabulary

VOCABULARY = Vocabulary.build(["add red circle", "remove blue square"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_composers_map_a_batch_to_embed_dim(name):
    model = build_model(name, VOCABULARY, embed_dim=32).eval()
    images = torch.randn(3, 3, 64, 64)
    composed = model.compose_img_text(images, ["add red circle", "remove", ""])
    assert composed.shape == (3, 32)
    assert model.extract_img_feature(images).shape == (3, 32)
    assert model.extract_text_feature(["x"]).shape == (1, 32)


def test_tirg_starts_with_a_equal_to_1_10_1_1():
    model = build_model("tirg", VOCABULARY, embed_dim=16)
    assert model.a.tolist() == [1.0, 10.0, 1.0, 1.0]


def test_tirg_is_gate_times_image_plus_weighted_residual():
    torch.manual_seed(0)
    model = build_model("tirg", VOCABULARY, embed_dim=8).eval()
    with torch.no_grad():
        model.a.copy_(torch.tensor([2.0, 3.0, 5.0, 7.0]))
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    both = torch.cat([image, text], dim=1)
    expected = 2.0 * torch.sigmoid(model.gated_feature_composer(both)) * image + 3.0 * model.res_info_composer(both)
    assert torch.allclose(model.compose(image, text), expected)


def test_baselines_ignore_the_other_modality():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    image_only = build_model("imgonly", VOCABULARY, embed_dim=8).eval()
    text_only = build_model("textonly", VOCABULARY, embed_dim=8).eval()
    assert torch.equal(image_only.compose_img_text(images, ["add", "remove"]), image_only.compose_img_text(images, ["x", "y"]))
    assert torch.equal(text_only.compose_img_text(images, ["add", "remove"]), text_only.compose_img_text(-images, ["add", "remove"]))


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="--model"):
        build_model("resnet", VOCABULARY)
