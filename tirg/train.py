"""Training loop for composition models: SGD with TIRG's parameter groups and step decay."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from tirg import distributed
from tirg.checkpoint import (
    atomic_torch_save,
    check_compatible,
    check_text_encoder,
    load_checkpoint,
    make_checkpoint,
    restore_rng_state,
)
from tirg.data import (
    IterationKeyedBatches,
    PairView,
    RetrievalDataset,
    SeededBatchSampler,
    SourceGroupedBatchSampler,
    default_image_size,
    default_pairs_per_source,
    image_transform,
    load_dataset,
)
from tirg.data.complete_text import complete_text_queries
from tirg.data.decoded import DecodedImages
from tirg.early_stopping import BEST_CHECKPOINT_NAME, EarlyStopping, ItemView, hold_out, validation_loss
from tirg.errors import CheckpointError
from tirg.evaluate import evaluate
from tirg.fileio import remove_stale_temporaries
from tirg.frozen_backbone import make_training_inputs
from tirg.losses import BASE_LOSS, LOSSES, weighted_loss
from tirg.models import MODELS, ComposeModel, build_model, canonical_model_name
from tirg.runs import new_run_dir as _new_run_dir
from tirg.runtime import Stream, check_amp, cuda_devices, resolve_device, seeded_generator
from tirg.text import Vocabulary
from tirg.validation import Rule, at_least, check_config, greater_than, one_of

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "latest_checkpoint.pth"


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


@dataclass
class TrainResult:
    """Where the run's checkpoints are and how it went.

    `metrics`: test recall of the last weights (empty when the test split was not evaluated).
    With validation (val_fraction > 0): `best_checkpoint` holds the weights of the lowest
    validation loss, `best_iteration` and `best_val_loss` say where and what it was.
    `points`: one row per evaluation point of this call (iteration; val_loss and improved when
    validating; the test metrics where the test split was evaluated); `train_loss`: iteration,
    value, the training loss as logged every log_every iterations.
    """

    run_dir: Path
    checkpoint: Path
    iteration: int
    metrics: dict[str, float]
    best_checkpoint: Path | None = None
    best_iteration: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    train_loss: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iteration", "value"]))


def make_optimizer(model: ComposeModel, config: TrainConfig) -> torch.optim.SGD:
    """Three groups: backbone fc at lr, rest of the backbone at factor*lr, everything else at lr."""
    fc = list(model.img_model.fc.parameters())
    fc_ids = {id(p) for p in fc}
    body = [p for p in model.img_model.parameters() if id(p) not in fc_ids]
    backbone_ids = {id(p) for p in model.img_model.parameters()}
    rest = [p for p in model.parameters() if id(p) not in backbone_ids]
    lr = config.learning_rate
    groups = [
        {"params": fc, "lr": lr, "base_lr": lr},
        {"params": body, "lr": lr * config.resolved_backbone_lr_factor(), "base_lr": lr * config.resolved_backbone_lr_factor()},
        {"params": rest, "lr": lr, "base_lr": lr},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=config.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, iteration: int) -> None:
    """lr x 0.1 every `learning_rate_decay_frequency` iterations, as a function of the iteration."""
    decay = 0.1 ** (iteration // config.learning_rate_decay_frequency)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * decay


def make_batch_sampler(sources: Sequence[int], config: TrainConfig, start_iteration: int) -> SeededBatchSampler:
    """Batches over the training items whose source images are `sources` (one per item)."""
    per_source = config.resolved_pairs_per_source()
    if per_source == 1:
        return SeededBatchSampler(len(sources), config.batch_size, config.seed, start_iteration)
    return SourceGroupedBatchSampler(sources, config.batch_size, config.seed, start_iteration, per_source)


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint path, or a run folder standing for its latest checkpoint."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


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


def with_query_texts(config: TrainConfig, dataset: RetrievalDataset) -> RetrievalDataset:
    """`dataset` with the texts the run uses: complete target captions under --use_complete_text_query."""
    return complete_text_queries(dataset) if config.use_complete_text_query else dataset


class LossStep(nn.Module):
    """The model's loss terms as a `forward`, which is what DistributedDataParallel wraps: its
    gradient averaging hooks into each forward. The batch-based losses see the global batch
    (tirg.distributed.gather_batch; the batch itself in one process)."""

    def __init__(self, model: ComposeModel):
        super().__init__()
        self.model = model

    def forward(
        self, source_images: torch.Tensor, texts: list[str], target_images: torch.Tensor, loss: str, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        return self.model.compute_loss_terms(source_images, texts, target_images, loss, generator, distributed.gather_batch)


def new_run_dir(config: TrainConfig) -> Path:
    """A new folder `log_dir/<time><comment>`, created exclusively: two runs never share one."""
    return _new_run_dir(config.log_dir, config.comment)


def train(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    writer: Any | None = None,
    progress: bool = False,
    trainset: RetrievalDataset | None = None,
    testset: RetrievalDataset | None = None,
    on_point: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
    evaluate_test: bool = True,
) -> TrainResult:
    """Train `config.model` on `config.dataset` and return where the checkpoints are.

    `resume` is a checkpoint (or its run folder) to continue exactly where it stopped: same
    batches, optimizer state, learning rate, generator states and early-stopping progress;
    `config.num_iters` may be raised to train longer. With `config.val_fraction` > 0 a share of
    the training sources is held out; every `eval_every` iterations the validation loss is
    computed on them, the best weights are kept in `best_checkpoint.pth` and training stops after
    `patience` points without improvement. Evaluation draws on no training randomness and leaves
    the trajectory as it was. `evaluate_test`: test recall at the end (and at the evaluation
    points when not validating); False evaluates no test split. `on_point(points, train_loss)` is
    called after every evaluation point (a notebook redraws its live plot there). `writer` is a
    tensorboardX SummaryWriter or None.

    Under torchrun (tirg.distributed.init_from_environment called first) every process runs this
    with the same arguments: `config.batch_size` is the global batch, each process takes its
    slice, the batch-based loss sees the global batch and BatchNorm its statistics, so the weights
    follow the one-process run. Rank 0 alone creates the run folder, writes checkpoints, metrics,
    TensorBoard and progress, and evaluates; the others wait for its result.
    """
    device = resolve_device(config.device)
    distributed.check_batch_size(config.batch_size)
    check_amp(config.amp, device)
    if config.freeze_backbone and distributed.world_size() > 1:
        raise ValueError("--freeze_backbone trains the heads on features cached once; run it in one process, without torchrun")
    main = distributed.is_main()
    if not main:
        writer, progress, on_point = None, False, None
    start_iteration = 0
    state: dict[str, Any] | None = None
    if resume is not None:
        resume_file = checkpoint_file(resume)
        state = load_checkpoint(resume_file)
        run_dir = resume_file.parent
        start_iteration = int(state["iteration"])
    run_dir = Path(run_dir) if run_dir is not None else distributed.from_main(lambda: new_run_dir(config))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)  # from a save killed mid-write

    trainset = with_query_texts(config, trainset or load_dataset(config.dataset, config.dataset_path, "train", **config.dataset_options()))
    if evaluate_test:
        testset = with_query_texts(config, testset or load_dataset(config.dataset, config.dataset_path, "test", **config.dataset_options()))
    # Errors before work: every image file of the splits used is checked (headers, not pixels) before training.
    trainset.check_images()
    if evaluate_test:
        testset.check_images()
    transform = image_transform(config.resolved_image_size())
    pairs = PairView(trainset, transform, config.seed, DecodedImages(trainset) if config.cache_images else None)
    split = (
        hold_out(pairs.sources, config.val_fraction, config.seed, f"{trainset.name} at {trainset.root}")
        if config.val_fraction > 0
        else None
    )
    if split:
        logger.info("%d training items, %d held out for validation", len(split.training), len(split.validation))
    vocabulary, initial = _initial_vocabulary_and_weights(config, state, trainset)
    model = build_model(
        config.model, vocabulary, config.embed_dim, config.backbone_weights, text_encoder=config.text_encoder,
        backbone=config.backbone, image_size=config.resolved_image_size(), text_cache_dir=config.text_embedding_cache,
    ).to(device)  # fmt: skip
    if initial is not None:
        check_text_encoder(initial, resume_file if resume is not None else config.pretrained_model, model)
        model.load_state_dict(initial["model"])
    model.prepare_texts(trainset.texts())
    # The frozen features are computed before BatchNorm becomes global: extraction runs in eval mode on one process.
    pairs = make_training_inputs(config, model, pairs, run_dir, device)
    training = ItemView(pairs, split.training if split else range(len(pairs)))
    model = distributed.global_batch_layers(model, device)
    if config.channels_last:
        model.img_model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    metrics: dict[str, float] = {}
    stopping = EarlyStopping(config.patience)
    if state is not None:
        check_compatible(state, resume_file, config.model, vocabulary)
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state)
        metrics = dict(state.get("metrics", {}))
        if state.get("early_stopping"):
            stopping.load_state_dict(state["early_stopping"])
    if main:
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))

    sampler = make_batch_sampler(training.sources, config, start_iteration)
    # A private generator keeps the loader from drawing on the global one (dropout's), which resume restores.
    # Every process draws the same global batches and loads only its own slice of each.
    loader = torch.utils.data.DataLoader(
        training,
        batch_sampler=distributed.RankSlices(IterationKeyedBatches(sampler)),
        num_workers=config.loader_num_workers,
        generator=torch.Generator(),
        pin_memory=device.type == "cuda",
    )
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    def to_device(images: torch.Tensor) -> torch.Tensor:
        return images.to(device, non_blocking=True, memory_format=memory_format)

    checkpoint_path = run_dir / CHECKPOINT_NAME
    best_path = run_dir / BEST_CHECKPOINT_NAME

    def save(iteration: int, path: Path = checkpoint_path) -> None:
        if not main:
            return
        remove_stale_temporaries(run_dir)
        atomic_torch_save(make_checkpoint(model, config.model, asdict(config), iteration, optimizer, metrics, stopping.state_dict()), path)

    points: list[dict[str, Any]] = []
    train_loss: list[tuple[int, float]] = []

    def evaluation_point(iteration: int, final: bool) -> None:
        """Evaluation on rank 0; the other processes wait for its test metrics and early-stopping state."""
        nonlocal metrics
        if split is None and not evaluate_test:
            return
        if main:
            evaluate_on_main(iteration, final)
        metrics, progress_state = distributed.from_main(lambda: (metrics, stopping.state_dict()))
        stopping.load_state_dict(progress_state)

    def evaluate_on_main(iteration: int, final: bool) -> None:
        """Validation loss and/or test recall at `iteration`, without touching training's generators."""
        nonlocal metrics
        row: dict[str, Any] = {"iteration": iteration}
        with torch.random.fork_rng(devices=cuda_devices(device)):
            if split is not None:
                loss = validation_loss(
                    model, ItemView(pairs, split.validation), config.loss, config.loss_weights(), config.batch_size,
                    config.seed, device, config.loader_num_workers,
                )  # fmt: skip
                if not math.isfinite(loss):
                    raise FloatingPointError(f"validation loss became {loss} at iteration {iteration}; lower --learning_rate")
                improved = stopping.update(loss, iteration)
                row.update(val_loss=loss, improved=improved)
                logger.info(
                    "iteration %d: validation loss %.4f (best %.4f at %s)", iteration, loss, stopping.best_loss, stopping.best_iteration
                )
                if writer is not None:
                    writer.add_scalar("validation/loss", loss, iteration)
                if improved:
                    save(iteration, best_path)
            if evaluate_test and (final or stopping.stopped or split is None):
                metrics = evaluate(model, testset, transform, device=device, num_workers=config.loader_num_workers)
                model.train()
                row.update(metrics)
                logger.info("iteration %d: %s", iteration, metrics)
                if writer is not None:
                    for name, value in metrics.items():
                        writer.add_scalar(f"test/{name}", value, iteration)
        points.append(row)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if on_point is not None:
            on_point(pd.DataFrame(points), pd.DataFrame(train_loss, columns=["iteration", "value"]))

    step = distributed.data_parallel(LossStep(model), device)
    model.train()
    iteration = start_iteration
    batches = iter(loader)
    running_loss, running_count, started = 0.0, 0, time.perf_counter()
    running_terms: dict[str, float] = {}
    loss_weights = config.loss_weights()
    bar = tqdm(total=config.num_iters, initial=start_iteration, desc=config.model, disable=not progress)
    while iteration < config.num_iters and not stopping.stopped:
        source_images, texts, target_images = next(batches)
        set_learning_rate(optimizer, config, iteration)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
            terms = step(
                to_device(source_images), list(texts), to_device(target_images), config.loss,
                seeded_generator(config.seed, iteration, Stream.TRIPLETS),
            )  # fmt: skip
        loss = weighted_loss(terms, loss_weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}; lower --learning_rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        running_loss, running_count = running_loss + loss.item(), running_count + 1
        for name, value in terms.items():
            running_terms[name] = running_terms.get(name, 0.0) + value.item()
        bar.update(1)
        if (config.log_every and iteration % config.log_every == 0) or iteration == config.num_iters:
            # Terms over one process's rows (reconstructions) are averaged into the global batch's.
            totals = distributed.mean_across(torch.tensor([running_loss, *running_terms.values()], dtype=torch.float64))
            running_loss, running_terms = float(totals[0]), dict(zip(running_terms, totals[1:].tolist()))
            mean_loss = running_loss / running_count
            train_loss.append((iteration, mean_loss))
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if writer is not None:
                # Each term unweighted under its own name (the base one as the loss's name), and their weighted sum.
                for name, total in running_terms.items():
                    writer.add_scalar(f"train/{config.loss if name == BASE_LOSS else name}", total / running_count, iteration)
                if len(running_terms) > 1:
                    writer.add_scalar("train/total_loss", mean_loss, iteration)
                writer.add_scalar("train/learning_rate", optimizer.param_groups[0]["lr"], iteration)
                writer.add_scalar("train/iterations_per_second", running_count / (time.perf_counter() - started), iteration)
            running_loss, running_count, started = 0.0, 0, time.perf_counter()
            running_terms = {}
        if (config.eval_every and iteration % config.eval_every == 0) or iteration == config.num_iters:
            evaluation_point(iteration, final=iteration == config.num_iters)
        if config.checkpoint_every and iteration % config.checkpoint_every == 0 and iteration < config.num_iters:
            save(iteration)
    bar.close()
    if iteration == start_iteration and evaluate_test and not metrics:
        evaluation_point(iteration, final=True)  # a finished run resumed without a test result
    save(iteration)
    distributed.barrier()  # no process returns before rank 0's checkpoint is written
    if stopping.stopped:
        logger.info("stopped at iteration %d: %d validation points without improvement", iteration, stopping.since_best)
    return TrainResult(
        run_dir, checkpoint_path, iteration, metrics,
        best_checkpoint=best_path if split is not None and best_path.is_file() else None,
        best_iteration=stopping.best_iteration if split is not None else None,
        best_val_loss=stopping.best_loss if split is not None and stopping.best_iteration is not None else None,
        stopped_early=stopping.stopped and iteration < config.num_iters,
        points=pd.DataFrame(points),
        train_loss=pd.DataFrame(train_loss, columns=["iteration", "value"]),
    )  # fmt: skip


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
