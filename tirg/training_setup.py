"""What a training run starts from: its settings when resumed, its data, its model and vocabulary, its batches."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tirg import distributed
from tirg.checkpoint import check_text_encoder, checkpoint_file, load_checkpoint
from tirg.config import TrainConfig, with_query_texts
from tirg.data import (
    IterationKeyedBatches,
    PairView,
    RetrievalDataset,
    SeededBatchSampler,
    SourceGroupedBatchSampler,
    load_dataset,
)
from tirg.data.base import ImageTransform
from tirg.data.decoded import DecodedImages
from tirg.early_stopping import HeldOutSplit, ItemView, hold_out
from tirg.errors import CheckpointError
from tirg.frozen_backbone import make_training_inputs
from tirg.models import ComposeModel, build_model, canonical_model_name
from tirg.text import Vocabulary

logger = logging.getLogger(__name__)

# Settings that decide the model's shape: a checkpoint and the config.json beside it must agree on them.
MODEL_SETTINGS = ("model", "embed_dim", "text_encoder", "backbone")


def resume_config(resume: str | Path, num_iters: int | None = None) -> TrainConfig:
    """The settings a run continues under: its folder's config.json (else the checkpoint's own
    config), with `num_iters` replaced when given. A checkpoint whose model differs from the
    config.json beside it is refused."""
    path = checkpoint_file(resume)
    checkpoint = load_checkpoint(path)
    config_path = path.parent / "config.json"
    saved = json.loads(config_path.read_text()) if config_path.is_file() else checkpoint["config"]
    config = TrainConfig.from_dict(saved)
    # Through from_dict, settings a checkpoint predates (text_encoder, backbone) compare as their defaults.
    recorded = _model_settings(TrainConfig.from_dict({**checkpoint["config"], "model": checkpoint["model_name"]}))
    described = _model_settings(config)
    differing = [
        f"{name}: {recorded[name]!r} in the checkpoint, {described[name]!r} in config.json"
        for name in MODEL_SETTINGS
        if recorded[name] != described[name]
    ]
    if differing:
        raise CheckpointError(
            f"{path} holds another model than {config_path} describes ({'; '.join(differing)}); resume the run it belongs to"
        )
    if num_iters is not None:
        config.num_iters = num_iters
    return config


def _model_settings(config: TrainConfig) -> dict[str, Any]:
    return {**{name: getattr(config, name) for name in MODEL_SETTINGS}, "model": canonical_model_name(config.model)}


def load_splits(
    config: TrainConfig, trainset: RetrievalDataset | None, testset: RetrievalDataset | None, evaluate_test: bool
) -> tuple[RetrievalDataset, RetrievalDataset | None]:
    """The training split (and the test split when it is evaluated) with the run's query texts, their image files checked."""
    trainset = with_query_texts(config, trainset or load_dataset(config.dataset, config.dataset_path, "train", **config.dataset_options()))
    if evaluate_test:
        testset = with_query_texts(config, testset or load_dataset(config.dataset, config.dataset_path, "test", **config.dataset_options()))
    # Errors before work: every image file of the splits used is checked (headers, not pixels) before training.
    trainset.check_images()
    if evaluate_test:
        testset.check_images()
    return trainset, testset


@dataclass
class TrainingData:
    """The training pairs (images or, with a frozen backbone, cached features), the items trained on and the held-out split."""

    pairs: PairView
    training: ItemView
    split: HeldOutSplit | None


def training_pairs(config: TrainConfig, trainset: RetrievalDataset, transform: ImageTransform) -> tuple[PairView, HeldOutSplit | None]:
    """Every training pair, and the share of source images held out for the validation loss (None without validation)."""
    pairs = PairView(trainset, transform, config.seed, DecodedImages(trainset) if config.cache_images else None)
    if config.val_fraction <= 0:
        return pairs, None
    split = hold_out(pairs.sources, config.val_fraction, config.seed, f"{trainset.name} at {trainset.root}")
    logger.info("%d training items, %d held out for validation", len(split.training), len(split.validation))
    return pairs, split


def build_training_model(
    config: TrainConfig, state: dict[str, Any] | None, resume_file: Path | None, trainset: RetrievalDataset, device: torch.device
) -> tuple[ComposeModel, Vocabulary]:
    """The model a run trains, on `device`, and its vocabulary: weights of the resumed checkpoint
    (`state`, read from `resume_file`) or of --pretrained_model when given, its text side ready for the training texts."""
    vocabulary, initial = _initial_vocabulary_and_weights(config, state, trainset)
    model = build_model(
        config.model, vocabulary, config.embed_dim, config.backbone_weights, text_encoder=config.text_encoder,
        backbone=config.backbone, image_size=config.resolved_image_size(), text_cache_dir=config.text_embedding_cache,
    ).to(device)  # fmt: skip
    if initial is not None:
        check_text_encoder(initial, resume_file if resume_file is not None else config.pretrained_model, model)
        model.load_state_dict(initial["model"])
    model.prepare_texts(trainset.texts())
    return model, vocabulary


def training_data(
    config: TrainConfig, model: ComposeModel, pairs: PairView, split: HeldOutSplit | None, run_dir: Path, device: torch.device
) -> TrainingData:
    """The pairs as the model trains on them; with a frozen backbone, its features are computed here, before
    BatchNorm becomes global: extraction runs in eval mode on one process."""
    pairs = make_training_inputs(config, model, pairs, run_dir, device)
    return TrainingData(pairs, ItemView(pairs, split.training if split else range(len(pairs))), split)


def _initial_vocabulary_and_weights(
    config: TrainConfig, state: dict[str, Any] | None, trainset: RetrievalDataset
) -> tuple[Vocabulary, dict[str, Any] | None]:
    """The resumed or pretrained checkpoint's vocabulary (so word ids keep their meaning) and the
    checkpoint itself, whose weights the model starts from; else a new vocabulary and None."""
    if state is not None:
        return Vocabulary(state["vocabulary"]), state
    if config.pretrained_model:
        pretrained = load_checkpoint(config.pretrained_model)
        if pretrained["model_name"] != config.model:
            raise ValueError(
                f"--pretrained_model {config.pretrained_model} holds a {pretrained['model_name']!r} model, not {config.model!r}"
            )
        return Vocabulary(pretrained["vocabulary"]), pretrained
    return Vocabulary.build(trainset.texts()), None


def make_batch_sampler(sources: Sequence[int], config: TrainConfig, start_iteration: int) -> SeededBatchSampler:
    """Batches over the training items whose source images are `sources` (one per item)."""
    per_source = config.resolved_pairs_per_source()
    if per_source == 1:
        return SeededBatchSampler(len(sources), config.batch_size, config.seed, start_iteration)
    return SourceGroupedBatchSampler(sources, config.batch_size, config.seed, start_iteration, per_source)


def make_loader(training: ItemView, config: TrainConfig, start_iteration: int, device: torch.device) -> torch.utils.data.DataLoader:
    """The training batches from `start_iteration` on, this process's slice of each global batch."""
    sampler = make_batch_sampler(training.sources, config, start_iteration)
    # A private generator keeps the loader from drawing on the global one (dropout's), which resume restores.
    # Every process draws the same global batches and loads only its own slice of each.
    return torch.utils.data.DataLoader(
        training,
        batch_sampler=distributed.RankSlices(IterationKeyedBatches(sampler)),
        num_workers=config.loader_num_workers,
        generator=torch.Generator(),
        pin_memory=device.type == "cuda",
    )
