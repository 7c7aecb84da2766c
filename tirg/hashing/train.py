"""Training and evaluation of the deep hashing network (DNNH-style, the fifth original system).

Protocol: queries are the test split, the database is the training split, both encoded
with the evaluation transform (the original encoded the database with training-time
augmentation). Codes are sign(tanh output); ranking is by Hamming distance with ties
broken by database index. Every evaluation is logged; the result reports the final
mAP@all and, labelled as such, the best mAP@all seen during training (the original
reported only the latter, which selects the model on the test set).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tirg import distributed
from tirg.errors import CheckpointError
from tirg.fileio import atomic_directory, atomic_write, atomic_write_text, marked_kind
from tirg.hashing.codes import hamming_rank, pack_codes, sign_codes
from tirg.hashing.data import LOADERS as DATASETS
from tirg.hashing.data import AugmentedImages, ImageLabelDataset, LabeledImages, eval_transform, load_labeled_images
from tirg.hashing.frozen import encode_features, freeze_backbone, split_features
from tirg.hashing.loss import default_margin, triplet_hashing_loss
from tirg.hashing.metrics import mean_average_precision, precision_at_k
from tirg.hashing.model import HashNet
from tirg.hashing.sampler import ClassBalancedBatchSampler
from tirg.runtime import Stream, seeded_generator
from tirg.validation import Rule, at_least, check_config, greater_than, one_of

logger = logging.getLogger(__name__)

FORMAT = "tirg-hash-checkpoint"
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pth", "result.json", "backbone_features")
HASH_RUN = marked_kind("hashing run", "tirg-hash-run", RUN_FILES)
OPTIMIZERS = ("SGD", "Adam")
LR_SCHEDULES = ("step", "cosine")


# What each setting must be, beyond its annotated type; checked whenever a HashTrainConfig is built.
HASH_TRAIN_RULES: dict[str, Rule] = {
    "dataset_name": one_of(DATASETS),
    "binary_bits": at_least(1),
    "margin": greater_than(0),
    "lr": greater_than(0),
    "batch_size": at_least(2),
    "classes_per_batch": at_least(2),  # a triplet needs a negative class
    "num_epochs": at_least(1),
    "optimizer_name": one_of(OPTIMIZERS),
    "momentum": at_least(0),
    "weight_decay": at_least(0),
    "step_lr": at_least(1),
    "lr_schedule": one_of(LR_SCHEDULES),
    "hidden_dim": at_least(0),
    "dropout": ((lambda value: math.isfinite(value) and 0 <= value < 1), "a number in [0, 1)"),
    "quantization_weight": at_least(0),
    "image_size": at_least(1),
    "batches_per_epoch": at_least(1),
    "eval_every": at_least(1),
    "eval_batch_size": at_least(1),
    "num_workers": at_least(0),
    "seed": at_least(0),
}
# `tirg hash train` flags whose names differ from the field's (None: the setting has no flag).
HASH_FLAGS = {"batch_size": "--batchSize", "eval_batch_size": None}


@dataclass
class HashTrainConfig:
    """Settings of one hashing run; names follow the original's flags where it had them.

    margin None means default_margin(binary_bits). batch_size must be a multiple of
    classes_per_batch (the original: 80 = 10 classes x 8 images). lr_schedule 'step' (the
    original's): lr x 0.1 every step_lr epochs; 'cosine': lr annealed to 0 over num_epochs
    (step_lr unused). eval_every: evaluate every that many epochs and after the last.
    hidden_dim, dropout: the hash head (tirg.hashing.model.hash_layer); 0 and 0 give the
    original's Linear head.
    """

    dataset_name: str = "CUB"
    dataset_path: str = "data/CUB_200_2011"
    binary_bits: int = 64
    margin: float | None = None
    lr: float = 0.001
    batch_size: int = 80
    classes_per_batch: int = 10
    num_epochs: int = 10
    optimizer_name: str = "SGD"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    step_lr: int = 1800
    lr_schedule: str = "step"
    hidden_dim: int = 0
    dropout: float = 0.0
    quantization_weight: float = 0.0
    image_size: int = 224
    batches_per_epoch: int | None = None
    eval_every: int = 5
    eval_batch_size: int = 100
    num_workers: int = 0
    seed: int = 0
    device: str = "cpu"
    backbone_weights: str | None = None  # a state dict path, 'imagenet' or None/'none' (random init)
    backbone: str = "resnet18"  # the original's; or vit_b_16, or any timm model name
    # Train only the hash head on backbone features computed once (eval transform) into feature_cache.
    freeze_backbone: bool = False
    feature_cache: str | None = None  # None: <run folder>/backbone_features

    def __post_init__(self) -> None:
        check_config(self, HASH_TRAIN_RULES, HASH_FLAGS)
        if self.batch_size % self.classes_per_batch or self.batch_size < self.classes_per_batch:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of classes_per_batch={self.classes_per_batch} (--batchSize)")

    def resolved_margin(self) -> float:
        return default_margin(self.binary_bits) if self.margin is None else self.margin


@dataclass
class HashEvaluation:
    """Retrieval quality of one set of codes (test queries against the training database)."""

    map_all: float
    map_at_100: float
    precision_at_100: float
    n_queries: int
    n_database: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class HashTrainResult:
    run_dir: Path
    final: HashEvaluation
    best_map_all: float  # the best mAP@all over all evaluations during training (model selection on test)
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)


def build_optimizer(model: torch.nn.Module, config: HashTrainConfig) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer_name == "SGD":
        return torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    # The original's Adam variant used betas (0.9, 0.98).
    return torch.optim.Adam(trainable, lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: HashTrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule of `config.lr_schedule`."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.num_epochs)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_lr, gamma=0.1)


@torch.no_grad()
def encode(
    model: torch.nn.Module,
    images: LabeledImages,
    image_size: int,
    batch_size: int = 100,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Relaxed codes float32 [n, bits] of every image, with the evaluation transform, in file order."""
    model.eval()
    loader = DataLoader(
        ImageLabelDataset(images, eval_transform(image_size)), batch_size=batch_size, num_workers=num_workers, generator=torch.Generator()
    )
    return np.concatenate([model(batch.to(device)).cpu().numpy() for batch, _ in loader])


def evaluate_codes(
    query_codes: np.ndarray, query_labels: np.ndarray, database_codes: np.ndarray, database_labels: np.ndarray
) -> HashEvaluation:
    """mAP@all, mAP@100 and precision@100 of sign codes under Hamming ranking (ties by database index)."""
    queries, database = pack_codes(sign_codes(query_codes)), pack_codes(sign_codes(database_codes))
    _, ids = hamming_rank(queries, database)
    k = min(100, len(database))
    return HashEvaluation(
        map_all=mean_average_precision(ids, query_labels, database_labels),
        map_at_100=mean_average_precision(ids, query_labels, database_labels, k),
        precision_at_100=precision_at_k(ids, query_labels, database_labels, k),
        n_queries=len(queries),
        n_database=len(database),
    )


def train_hashing(config: HashTrainConfig, run_dir: str | Path, progress: bool = False, overwrite: bool = False) -> HashTrainResult:
    """Train HashNet on the training split; evaluate every `eval_every` epochs and after the last.

    The run is written into a staging folder and swapped into `run_dir` when it ends, so a failed or
    killed run leaves no partial run behind. `run_dir` must be absent, empty, or (with `overwrite`)
    an earlier hashing run; anything else is refused before training (tirg.fileio.check_output_dir).

    Under torchrun every process calls this: `batch_size` is the global batch, each process takes
    its slice, the triplet loss is taken over the gathered global batch and BatchNorm over the
    global batch, so the weights follow the one-process run; rank 0 alone writes and evaluates.
    """
    run_dir = Path(run_dir)
    distributed.check_batch_size(config.batch_size, "--batchSize")
    if config.freeze_backbone and distributed.world_size() > 1:
        raise ValueError("--freeze_backbone trains only the hash head on features cached once; run it in one process, without torchrun")
    if distributed.is_main():
        with atomic_directory(run_dir, HASH_RUN, overwrite) as staging:
            result = _train_into(config, staging, progress)
    else:
        result = _train_into(config, None, progress=False)
    distributed.barrier()  # no process returns before rank 0's run folder is in place
    return replace(result, run_dir=run_dir)


def _train_into(config: HashTrainConfig, run_dir: Path | None, progress: bool) -> HashTrainResult:
    """The training run; `run_dir` None on ranks other than 0, which write nothing."""
    if run_dir is not None:
        atomic_write_text(run_dir / "config.json", json.dumps(asdict(config), indent=2))
    trainset = load_labeled_images(config.dataset_name, config.dataset_path, "train")
    testset = load_labeled_images(config.dataset_name, config.dataset_path, "test")
    trainset.check_images()
    testset.check_images()
    device = torch.device(config.device)
    model, network, features = _build_network(config, trainset, testset, run_dir, device)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    history: list[dict[str, Any]] = []
    best_map, best_epoch, final = -1.0, 0, None
    epochs = range(1, config.num_epochs + 1)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"hash {config.binary_bits} bits")
    for epoch in epochs:
        batches = _epoch_batches(config, trainset, features, epoch, device)
        started = time.perf_counter()
        losses = _train_epoch(model, network, batches, optimizer, config, device)
        scheduler.step()
        record: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)), "train_s": time.perf_counter() - started}
        if epoch % config.eval_every == 0 or epoch == config.num_epochs:
            final = _evaluate_epoch(model, trainset, testset, config, device, features)
            record.update(final.as_dict())
            if final.map_all > best_map:
                best_map, best_epoch = final.map_all, epoch
        history.append(record)
        logger.info("epoch %d: %s", epoch, record)
        if run_dir is not None:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
    assert final is not None  # the last epoch always evaluates
    result = HashTrainResult(run_dir or Path(), final, best_map, best_epoch, history)
    if run_dir is not None:
        save_hash_checkpoint(run_dir / "checkpoint.pth", model, optimizer, config, config.num_epochs, history)
        summary = {"final": final.as_dict(), "best_map_all_during_training": best_map, "best_epoch": best_epoch}
        atomic_write_text(run_dir / "result.json", json.dumps(summary, indent=2))
    return result


def _build_network(
    config: HashTrainConfig, trainset: LabeledImages, testset: LabeledImages, run_dir: Path | None, device: torch.device
) -> tuple[HashNet, nn.Module, tuple[torch.Tensor, torch.Tensor] | None]:
    """The hash network, the module a training step calls (DDP-wrapped when distributed) and, with
    a frozen backbone, the train and test sets' backbone features (else None)."""
    # Initialisation draws from torch's global generator: a fork of it seeded from the run makes it
    # reproducible and leaves the caller's generator as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = HashNet(config.binary_bits, config.backbone_weights, config.backbone, config.hidden_dim, config.dropout)
    model = distributed.global_batch_layers(model.to(device), device)
    network = distributed.data_parallel(model, device)
    features: tuple[torch.Tensor, torch.Tensor] | None = None
    if config.freeze_backbone:
        freeze_backbone(model)
        features = frozen_features(model, trainset, testset, config, run_dir, device)
    return model, network, features


def _epoch_batches(
    config: HashTrainConfig,
    trainset: LabeledImages,
    features: tuple[torch.Tensor, torch.Tensor] | None,
    epoch: int,
    device: torch.device,
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's class-balanced batches (inputs, labels): augmented images, or rows of the frozen backbone's features."""
    sampler = ClassBalancedBatchSampler(
        trainset.labels, config.classes_per_batch, config.batch_size // config.classes_per_batch,
        generator=seeded_generator(config.seed, epoch, Stream.BATCHES), batches_per_epoch=config.batches_per_epoch,
    )  # fmt: skip
    if features is not None:
        return ((features[0][rows], torch.as_tensor(trainset.labels[rows])) for rows in sampler)
    images = AugmentedImages(trainset, config.image_size, config.seed, epoch)
    # A private generator: the loader would otherwise draw its worker seed from the global one.
    # Every process draws the same global batches and loads only its own slice of each.
    batches = distributed.RankSlices(sampler)
    return DataLoader(
        images, batch_sampler=batches, num_workers=config.num_workers, generator=torch.Generator(), pin_memory=device.type == "cuda"
    )


def _train_epoch(
    model: HashNet,
    network: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    config: HashTrainConfig,
    device: torch.device,
) -> list[float]:
    """One pass over `loader`; the loss of each step. Frozen-backbone batches (2-D feature rows) go through the head only."""
    model.train()
    margin = config.resolved_margin()
    losses = []
    for batch, labels in loader:
        codes = network(batch.to(device, non_blocking=True)) if not config.freeze_backbone else model.head(batch.to(device))
        # The triplets of the global batch, on every process (the batch itself in one process).
        codes, labels = distributed.gather_batch(codes), distributed.gather_batch(labels.to(device))
        loss, _ = triplet_hashing_loss(codes, labels, margin, config.quantization_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _evaluate_epoch(
    model: HashNet,
    trainset: LabeledImages,
    testset: LabeledImages,
    config: HashTrainConfig,
    device: torch.device,
    features: tuple[torch.Tensor, torch.Tensor] | None,
) -> HashEvaluation:
    """mAP and precision of the current codes, test queries against the training set as the database."""
    if features is None:  # on rank 0; the others wait for its result
        return distributed.from_main(lambda: evaluate_model(model, trainset, testset, config, device))
    return evaluate_codes(encode_features(model, features[1]), testset.labels, encode_features(model, features[0]), trainset.labels)


def frozen_features(
    model: HashNet, trainset: LabeledImages, testset: LabeledImages, config: HashTrainConfig, run_dir: Path, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features of the training and test images, from the cache (computed once, refused when stale)."""
    cache = Path(config.feature_cache) if config.feature_cache else run_dir / "backbone_features"
    options = {"image_size": config.image_size, "batch_size": config.eval_batch_size, "num_workers": config.num_workers, "device": device}
    train = split_features(model, config.backbone_weights, trainset, cache / "train", **options)
    test = split_features(model, config.backbone_weights, testset, cache / "test", **options)
    return train.to(device), test.to(device)


def evaluate_model(
    model: HashNet, trainset: LabeledImages, testset: LabeledImages, config: HashTrainConfig, device: torch.device
) -> HashEvaluation:
    database = encode(model, trainset, config.image_size, config.eval_batch_size, config.num_workers, device)
    queries = encode(model, testset, config.image_size, config.eval_batch_size, config.num_workers, device)
    return evaluate_codes(queries, testset.labels, database, trainset.labels)


def save_hash_checkpoint(
    path: Path, model: HashNet, optimizer: torch.optim.Optimizer, config: HashTrainConfig, epoch: int, history: list[dict[str, Any]]
) -> None:
    state = {
        "format": FORMAT,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": asdict(config),
        "preprocessing": model.preprocessing.as_dict(),
        "history": history,
    }
    atomic_write(path, lambda f: torch.save(state, f))


def load_hash_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[HashNet, HashTrainConfig]:
    """The network and config of a checkpoint written by train_hashing (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"hash checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hashing checkpoint (no 'format': {FORMAT!r})")
    config = HashTrainConfig(**state["config"])
    model = HashNet(config.binary_bits, backbone=config.backbone, hidden_dim=config.hidden_dim, dropout=config.dropout)
    model.load_state_dict(state["model"])
    return model.to(device), config
