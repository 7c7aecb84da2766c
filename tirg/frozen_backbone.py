"""Composition models with a frozen image backbone: each image's pooled feature computed once, only the heads train.

CLIP4Cir's recipe (`tirg train --freeze_backbone`): the backbone never changes, so its output
for an image under the evaluation transform is computed once into a backbone-feature cache
(tirg.backbone_cache: manifest, refused when stale), and training batches carry those rows
instead of images. The image model's final projection `fc`, the composer and the text encoder
train; `ComposeModel.extract_img_feature` runs only `fc` on such 2-D inputs. The checkpoint
holds the whole model (frozen weights included), so evaluation and `tirg eval` run it on images
and give what the run reported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from tirg.backbone_cache import cache_identity, cached_backbone_features, compute_features, state_sha256
from tirg.config import TrainConfig
from tirg.data import ImageView, PairView
from tirg.models import ComposeModel
from tirg.models.image import backbone_features, preprocessing_record

logger = logging.getLogger(__name__)

CACHE_FOLDER = "backbone_features"  # inside the run folder when --feature_cache is not given
TRANSFORM = "evaluation transform: resize shorter side, centre crop, ImageNet statistics"


class FeaturePairView(PairView):
    """The pairs of a PairView (same draws for the same item and iteration) as rows of cached backbone features."""

    def __init__(self, pairs: PairView, features: np.ndarray):
        super().__init__(pairs.dataset, pairs.transform, pairs.seed)
        self.features = features

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, str, torch.Tensor]:
        pair = self.pair(key)
        return torch.from_numpy(np.array(self.features[pair.source])), pair.text, torch.from_numpy(np.array(self.features[pair.target]))


def head_parameter_names(model: ComposeModel) -> set[str]:
    """Parameters a frozen-backbone run trains: everything but the image model's body (its `fc` trains)."""
    return {name for name, _ in model.named_parameters() if not name.startswith("img_model.") or name.startswith("img_model.fc.")}


def freeze_image_backbone(model: ComposeModel) -> None:
    """Stop gradients into the image model's body; the optimizer then leaves it as it is."""
    heads = head_parameter_names(model)
    for name, parameter in model.named_parameters():
        if name not in heads:
            parameter.requires_grad_(False)


def feature_identity(model: ComposeModel, config: TrainConfig, pairs: PairView) -> dict:
    """What the cached features of `pairs`' images depend on (backbone, its weights by hash, preprocessing, image list)."""
    return cache_identity(
        config.backbone, config.backbone_weights, state_sha256(model.img_model, skip_prefix="fc."),
        preprocessing_record(model.img_model, config.resolved_image_size()), TRANSFORM, pairs.dataset.image_files,
    )  # fmt: skip


def backbone_feature_cache(config: TrainConfig, run_dir: Path) -> Path:
    """The training split's backbone-feature cache: `--feature_cache DIR`/train, else in the run folder."""
    return (Path(config.feature_cache) if config.feature_cache else run_dir / CACHE_FOLDER) / "train"


def make_training_inputs(config: TrainConfig, model: ComposeModel, pairs: PairView, run_dir: Path, device: torch.device) -> PairView:
    """`pairs` (images) for end-to-end training; with `config.freeze_backbone` the model's body is frozen
    and the same pairs come as cached backbone features (computed now, or read and checked)."""
    if not config.freeze_backbone:
        return pairs
    freeze_image_backbone(model)
    cache = backbone_feature_cache(config, run_dir)
    dataset = pairs.dataset

    def compute() -> np.ndarray:
        logger.info(
            "computing %s backbone features of %d %s %s images into %s", config.backbone, len(dataset), dataset.name, dataset.split, cache
        )
        model.eval()
        # A private generator: drawing a loader seed from the global one would shift dropout after a resume.
        loader = torch.utils.data.DataLoader(
            ImageView(dataset, pairs.transform), batch_size=64, num_workers=config.loader_num_workers, generator=torch.Generator()
        )
        features = compute_features(lambda images: backbone_features(model.img_model, images), ((images,) for images in loader), device)
        model.train()
        return features

    return FeaturePairView(pairs, cached_backbone_features(cache, feature_identity(model, config, pairs), compute))
