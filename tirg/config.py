"""Training settings: `TrainConfig`, read by the trainer, feature caches, retrieval, the CLI and notebooks.

Kept apart from the training loop so that code which only reads a run's settings (a feature
cache rebuilding its data set, a single-query search) does not load training code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tirg.data import RetrievalDataset, default_image_size, default_pairs_per_source
from tirg.data.complete_text import complete_text_queries
from tirg.losses import BASE_LOSS, LOSSES
from tirg.models import MODELS, canonical_model_name
from tirg.validation import Rule, at_least, check_config, greater_than, one_of

# What each setting must be, beyond its annotated type; checked whenever a TrainConfig is built.
TRAIN_RULES: dict[str, Rule] = {
    "model": one_of(MODELS, any_case=True),
    "loss": one_of(LOSSES),
    # Any timm model name is accepted here; an unknown one is refused, named, when the model is built.
    "backbone": ((lambda value: bool(value.strip())), "a backbone name: resnet18, vit_b_16 or a timm model name"),
    "embed_dim": at_least(1),
    "num_iters": at_least(0),
    "batch_size": at_least(2),
    "learning_rate": greater_than(0),
    "learning_rate_decay_frequency": at_least(1),
    "weight_decay": at_least(0),
    "backbone_lr_factor": at_least(0),
    "image_size": at_least(1),
    "pairs_per_source": at_least(1),
    "loader_num_workers": at_least(0),
    "eval_every": at_least(0),
    "val_fraction": ((lambda value: 0 <= value < 1), "a fraction in [0, 1) (0: no validation)"),
    "patience": at_least(0),
    "checkpoint_every": at_least(0),
    "log_every": at_least(0),
    "seed": at_least(0),
    "image_reconstruction_weight": at_least(0),
    "text_reconstruction_weight": at_least(0),
    "rotational_symmetry_weight": at_least(0),
}


@dataclass
class TrainConfig:
    """Training settings; field names follow TIRG's `main.py` flags."""

    dataset: str = "css"
    dataset_path: str = "data/css"
    model: str = "tirg"
    loss: str = "soft_triplet"
    embed_dim: int = 512
    num_iters: int = 160_000
    batch_size: int = 32
    learning_rate: float = 1e-2
    learning_rate_decay_frequency: int = 9_999_999
    weight_decay: float = 1e-6
    # Learning-rate factor of the ResNet body (all but its fc). None: 0.1 when the backbone
    # starts from pretrained weights (TIRG's real-image setting), else 1.0 (TIRG's CSS setting).
    backbone_lr_factor: float | None = None
    backbone_weights: str | None = None
    image_size: int | None = None  # None: the data set's default (native size for CSS, 224 otherwise)
    # Pairs sharing a source image in each batch. None: the data set's default (2 for CSS, as
    # TIRG's loader drew them, giving hard negatives; 1 = independent pairs).
    pairs_per_source: int | None = None
    comment: str = ""
    log_dir: str = "runs"
    loader_num_workers: int = 0
    # Iterations between evaluation points: the validation loss when val_fraction > 0 (test recall
    # then only at the end), else test recall; 0: only at the end.
    eval_every: int = 0
    val_fraction: float = 0.0  # share of the training source images held out for the validation loss; 0: none
    patience: int = 3  # validation points without a lower loss before training stops; 0: never stops early
    checkpoint_every: int = 500  # iterations between checkpoints; 0: only at the end
    log_every: int = 20  # iterations between logged losses; 0: only at the end
    seed: int = 0
    device: str = "auto"
    pretrained_model: str | None = None  # start from another run's weights (and vocabulary)
    # Real data set options (README "Real data sets"). ComposeAE's flag: a category, several joined
    # by commas, or "all"; Fashion200k (dress jacket pants skirt top) and FashionIQ (dress shirt toptee).
    category_to_train: str = "all"
    query_template: str = "replace {} with {}"  # Fashion200k; the pants project: "change {} to {}"
    caption_join: str = ""  # FashionIQ: "and_it", "plain", or "" for ComposeAE's choice
    skip_missing_images: bool = False  # FashionIQ: skip and count entries whose image is absent
    # Text side and ComposeAE's losses. text_encoder: 'lstm', 'minilm' (all-MiniLM-L6-v2 from the
    # `text` extra; what --use_bert selects) or a local sentence-transformers folder.
    text_encoder: str = "lstm"
    text_embedding_cache: str | None = None  # folder keeping a pretrained encoder's embeddings on disk
    use_complete_text_query: bool = False  # the text is the target image's full caption
    backbone: str = "resnet18"  # or 'vit_b_16'
    image_reconstruction_weight: float = 0.1
    text_reconstruction_weight: float = 0.1
    rotational_symmetry_weight: float = 0.01
    # The GPU path; each also runs on CPU. amp: bfloat16 autocast of the forward pass and loss.
    amp: bool = False
    channels_last: bool = False  # the image model and its batches in NHWC memory format (faster convolutions on CUDA)
    # The training split's images decoded once and kept in memory as uint8 (per process; small data
    # sets such as CSS), so PNG decoding does not starve the GPU; transforms still run every step.
    cache_images: bool = False
    # CLIP4Cir's recipe: backbone features computed once (evaluation transform) into a cache, only the
    # heads train (image fc, composer, text encoder); see tirg.frozen_backbone.
    freeze_backbone: bool = False
    feature_cache: str | None = None  # folder of the frozen backbone's features; None: <run folder>/backbone_features

    def __post_init__(self) -> None:
        check_config(self, TRAIN_RULES)
        if self.freeze_backbone and not MODELS[canonical_model_name(self.model)].composes_pooled_features:
            raise ValueError(f"--freeze_backbone caches pooled backbone features; --model {self.model} composes on the convolutional map")

    def dataset_options(self) -> dict[str, Any]:
        """The loader options these settings give `load_dataset` for `dataset`."""
        categories = None if self.category_to_train == "all" else tuple(self.category_to_train.split(","))
        name = self.dataset.lower()
        if name == "fashion200k":
            return {"categories": categories, "template": self.query_template}
        if name == "fashioniq":
            return {"categories": categories, "join": self.caption_join or None, "skip_missing_images": self.skip_missing_images}
        return {}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def resolved_image_size(self) -> int | None:
        return self.image_size if self.image_size is not None else default_image_size(self.dataset)

    def resolved_pairs_per_source(self) -> int:
        return self.pairs_per_source if self.pairs_per_source is not None else default_pairs_per_source(self.dataset)

    def loss_weights(self) -> dict[str, float]:
        """Weights of the loss terms models return; terms a model lacks are not used."""
        return {
            BASE_LOSS: 1.0,
            "image_reconstruction": self.image_reconstruction_weight,
            "text_reconstruction": self.text_reconstruction_weight,
            "rotational_symmetry": self.rotational_symmetry_weight,
        }

    def resolved_backbone_lr_factor(self) -> float:
        if self.backbone_lr_factor is not None:
            return self.backbone_lr_factor
        return 0.1 if (self.backbone_weights or self.pretrained_model) else 1.0


def with_query_texts(config: TrainConfig, dataset: RetrievalDataset) -> RetrievalDataset:
    """`dataset` with the texts the run uses: complete target captions under --use_complete_text_query."""
    return complete_text_queries(dataset) if config.use_complete_text_query else dataset
