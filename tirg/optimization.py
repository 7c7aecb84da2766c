"""SGD with TIRG's parameter groups and its step decay of the learning rate."""

from __future__ import annotations

import torch

from tirg.config import TrainConfig
from tirg.models import ComposeModel


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
