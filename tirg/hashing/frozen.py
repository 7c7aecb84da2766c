"""Deep hashing with a frozen backbone: features computed once into a cache, only the hash head trained.

Every image's pooled backbone feature under the evaluation transform is computed once (see
tirg.backbone_cache) and the hash head (net.fc, then tanh) trains on those rows with the same
class-balanced batches and triplet loss as end-to-end training. Evaluation encodes the cached
features with the head, which equals the full network on the evaluation transform's images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tirg.backbone_cache import cache_identity, cached_backbone_features, compute_features, state_sha256
from tirg.hashing.data import ImageLabelDataset, LabeledImages, eval_transform
from tirg.hashing.model import HashNet

logger = logging.getLogger(__name__)


def frozen_identity(model: HashNet, weights: str | None, images: LabeledImages, image_size: int) -> dict:
    """The manifest fields of `images`' backbone features under `model`'s frozen body."""
    preprocessing = {**model.preprocessing.as_dict(), "image_size": image_size, "resize": round(image_size * 256 / 224)}
    weights_hash = state_sha256(model.net, skip_prefix="fc.")
    return cache_identity(model.backbone, weights, weights_hash, preprocessing, "eval: resize, centre crop", images.files)


def split_features(
    model: HashNet,
    weights: str | None,
    images: LabeledImages,
    cache_dir: str | Path,
    image_size: int,
    batch_size: int = 100,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """float32 [n, dim] backbone features of `images` from the cache at `cache_dir`, computed and written first if absent."""

    def compute() -> np.ndarray:
        logger.info("computing %s backbone features of %d %s images into %s", model.backbone, len(images), images.split, cache_dir)
        model.eval()
        loader = DataLoader(ImageLabelDataset(images, eval_transform(image_size)), batch_size=batch_size, num_workers=num_workers)
        return compute_features(model.backbone_features, loader, device)

    features = cached_backbone_features(cache_dir, frozen_identity(model, weights, images, image_size), compute)
    return torch.from_numpy(np.array(features))


def head_parameters(model: HashNet) -> list[torch.nn.Parameter]:
    """The only parameters a frozen-backbone run trains."""
    return list(model.net.fc.parameters())


def freeze_backbone(model: HashNet) -> None:
    """Stop gradients into everything but the hash head."""
    head = {id(p) for p in head_parameters(model)}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head)


@torch.no_grad()
def encode_features(model: HashNet, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Relaxed codes float32 [n, bits] of cached backbone features."""
    model.eval()
    return np.concatenate([model.head(features[i : i + batch_size]).cpu().numpy() for i in range(0, len(features), batch_size)])
