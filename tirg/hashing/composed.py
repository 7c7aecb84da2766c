"""Learned hashing for composed retrieval: a hash head trained on cached TIRG features.

The positive pair is a composed query (source image + modification text) and its target
image's features; every other item of the batch whose target caption differs is a
negative. One head encodes both sides, since TIRG puts them in one space. The training
features come from a cache of the *training* split, so the test queries and gallery the
comparison scores were never seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from tirg.features import FeatureCache
from tirg.hashing.loss import default_margin, triplet_hashing_loss
from tirg.hashing.model import HashHead
from tirg.metrics import encode_captions
from tirg.runtime import seeded_generator
from tirg.validation import Rule, at_least, check_config, greater_than

logger = logging.getLogger(__name__)


COMPOSED_HASH_RULES: dict[str, Rule] = {
    "bits": at_least(1),
    "epochs": at_least(1),
    "batch_size": at_least(2),
    "lr": greater_than(0),
    "margin": greater_than(0),
    "quantization_weight": at_least(0),
    "seed": at_least(0),
}
# lsh.py's flags for these settings (None: no flag).
COMPOSED_HASH_FLAGS = {"bits": "--hash-bits", "epochs": None, "batch_size": None, "lr": None, "margin": None, "quantization_weight": None}


@dataclass(frozen=True)
class ComposedHashConfig:
    """bits: code length; margin None: default_margin(bits); batch_size: queries per batch
    (each brings its target, so the loss sees 2 x batch_size codes)."""

    bits: int = 12
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    margin: float | None = None
    quantization_weight: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, COMPOSED_HASH_RULES, COMPOSED_HASH_FLAGS)


def training_pairs(cache: FeatureCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(composed queries [n, d], their targets' features [n, d], target labels [n]) of a cache's
    queries with a known target; labels number the target captions."""
    targets = np.asarray(cache.query_targets)
    known = targets >= 0
    if not known.any():
        raise ValueError(f"{cache.path}: no query has a known target image to train a hash head on")
    labels, _ = encode_captions(cache.target_captions, cache.gallery_captions)
    gallery = np.asarray(cache.gallery_features)
    return np.asarray(cache.query_features)[known], gallery[targets[known]], labels[known]


def train_hash_head(queries: np.ndarray, targets: np.ndarray, labels: np.ndarray, config: ComposedHashConfig) -> HashHead:
    """Fit HashHead so each composed query's code is nearer its target's code than other captions'."""
    generator = seeded_generator(config.seed, 0)
    head = HashHead(queries.shape[1], config.bits)
    torch.nn.init.normal_(head.linear.weight, generator=generator)  # start from random-hyperplane LSH
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    margin = default_margin(config.bits) if config.margin is None else config.margin
    q, t, y = torch.from_numpy(queries), torch.from_numpy(targets), torch.from_numpy(labels)
    for epoch in range(config.epochs):
        order = torch.randperm(len(q), generator=seeded_generator(config.seed, epoch + 1))
        total = 0.0
        for start in range(0, len(q), config.batch_size):
            rows = order[start : start + config.batch_size]
            codes = head(torch.cat([q[rows], t[rows]]))
            loss, _ = triplet_hashing_loss(codes, torch.cat([y[rows], y[rows]]), margin, config.quantization_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        logger.debug("hash head %d bits, epoch %d: loss %.4f", config.bits, epoch, total / len(q))
    return head


def train_hash_head_on_cache(cache: FeatureCache, config: ComposedHashConfig) -> HashHead:
    return train_hash_head(*training_pairs(cache), config)
