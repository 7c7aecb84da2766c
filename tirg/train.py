"""Training loop for composition models: SGD with TIRG's parameter groups and step decay."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tirg.checkpoint import atomic_torch_save, check_compatible, check_text_encoder, load_checkpoint, make_checkpoint
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
from tirg.evaluate import evaluate
from tirg.fileio import remove_stale_temporaries
from tirg.losses import BASE_LOSS, weighted_loss
from tirg.models import ComposeModel, build_model
from tirg.runs import new_run_dir as _new_run_dir
from tirg.runtime import resolve_device, seeded_generator
from tirg.text import Vocabulary

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "latest_checkpoint.pth"


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
    eval_every: int = 0  # iterations between test evaluations; 0: only at the end
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
    run_dir: Path
    checkpoint: Path
    iteration: int
    metrics: dict[str, float]


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


def make_batch_sampler(trainset: RetrievalDataset, config: TrainConfig, start_iteration: int) -> SeededBatchSampler:
    per_source = config.resolved_pairs_per_source()
    sources = trainset.training_sources()
    if per_source == 1:
        return SeededBatchSampler(len(sources), config.batch_size, config.seed, start_iteration)
    return SourceGroupedBatchSampler(sources, config.batch_size, config.seed, start_iteration, per_source)


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint path, or a run folder standing for its latest checkpoint."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def with_query_texts(config: TrainConfig, dataset: RetrievalDataset) -> RetrievalDataset:
    """`dataset` with the texts the run uses: complete target captions under --use_complete_text_query."""
    return complete_text_queries(dataset) if config.use_complete_text_query else dataset


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
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train `config.model` on `config.dataset` and return where the checkpoint is.

    `resume` is a checkpoint (or its run folder) to continue exactly where it stopped: same
    batches, optimizer state, learning rate and dropout generator state; `config.num_iters`
    may be raised to train longer. `writer` is a tensorboardX SummaryWriter or None.
    """
    device = resolve_device(config.device)
    start_iteration = 0
    state: dict[str, Any] | None = None
    if resume is not None:
        resume_file = checkpoint_file(resume)
        state = load_checkpoint(resume_file)
        run_dir = resume_file.parent
        start_iteration = int(state["iteration"])
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir)  # from a save killed mid-write

    trainset = with_query_texts(config, trainset or load_dataset(config.dataset, config.dataset_path, "train", **config.dataset_options()))
    testset = None if testset is None else with_query_texts(config, testset)
    transform = image_transform(config.resolved_image_size())
    vocabulary, initial = _initial_vocabulary_and_weights(config, state, trainset)
    model = build_model(
        config.model, vocabulary, config.embed_dim, config.backbone_weights, text_encoder=config.text_encoder,
        backbone=config.backbone, image_size=config.resolved_image_size(), text_cache_dir=config.text_embedding_cache,
    ).to(device)  # fmt: skip
    if initial is not None:
        check_text_encoder(initial, resume_file if resume is not None else config.pretrained_model, model)
        model.load_state_dict(initial["model"])
    model.prepare_texts(trainset.texts())
    optimizer = make_optimizer(model, config)
    metrics: dict[str, float] = {}
    if state is not None:
        check_compatible(state, resume_file, config.model, vocabulary)
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng_state"])
        metrics = dict(state.get("metrics", {}))
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))

    sampler = make_batch_sampler(trainset, config, start_iteration)
    # A private generator keeps the loader from drawing on the global one (dropout's), which resume restores.
    loader = torch.utils.data.DataLoader(
        PairView(trainset, transform, config.seed),
        batch_sampler=IterationKeyedBatches(sampler),
        num_workers=config.loader_num_workers,
        generator=torch.Generator(),
    )
    checkpoint_path = run_dir / CHECKPOINT_NAME

    def save(iteration: int) -> None:
        remove_stale_temporaries(run_dir)
        atomic_torch_save(make_checkpoint(model, config.model, asdict(config), iteration, optimizer, metrics), checkpoint_path)

    def run_evaluation(iteration: int) -> None:
        nonlocal metrics, testset
        if testset is None:
            testset = with_query_texts(config, load_dataset(config.dataset, config.dataset_path, "test", **config.dataset_options()))
        metrics = evaluate(model, testset, transform, device=device, num_workers=config.loader_num_workers)
        model.train()
        logger.info("iteration %d: %s", iteration, metrics)
        if writer is not None:
            for name, value in metrics.items():
                writer.add_scalar(f"test/{name}", value, iteration)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"iteration": iteration, **metrics}) + "\n")
        if on_evaluate is not None:
            on_evaluate(iteration, metrics)

    model.train()
    iteration = start_iteration
    batches = iter(loader)
    running_loss, running_count, started = 0.0, 0, time.perf_counter()
    running_terms: dict[str, float] = {}
    loss_weights = config.loss_weights()
    bar = tqdm(total=config.num_iters, initial=start_iteration, desc=config.model, disable=not progress)
    while iteration < config.num_iters:
        source_images, texts, target_images = next(batches)
        set_learning_rate(optimizer, config, iteration)
        terms = model.compute_loss_terms(
            source_images.to(device), list(texts), target_images.to(device), config.loss,
            seeded_generator(config.seed, iteration),
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
            mean_loss = running_loss / running_count
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
        if config.eval_every and iteration % config.eval_every == 0 and iteration < config.num_iters:
            run_evaluation(iteration)
        if config.checkpoint_every and iteration % config.checkpoint_every == 0 and iteration < config.num_iters:
            save(iteration)
    bar.close()
    if start_iteration < config.num_iters or not metrics:
        run_evaluation(iteration)
    save(iteration)
    return TrainResult(run_dir, checkpoint_path, iteration, metrics)


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
