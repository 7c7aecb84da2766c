"""tirg: composed image retrieval (TIRG and baselines), fast exact and LSH search, deep hashing.

The package prints nothing, parses no arguments and reads no globals; the `tirg` command,
the top-level scripts and the notebooks are thin layers over these functions.
"""

from tirg.checkpoint import load_checkpoint, load_model
from tirg.config import TrainConfig
from tirg.data import CSSGeneratorConfig, generate_css, image_transform, load_dataset
from tirg.evaluate import compute_image_features, compute_query_features, evaluate, recall_from_features
from tirg.features import compute_and_save, dataset_for_cache, load_feature_cache
from tirg.index import exact_search
from tirg.metrics import recall_at_ks
from tirg.models import build_model
from tirg.text import Vocabulary, tokenize
from tirg.training import train

__all__ = [
    "CSSGeneratorConfig",
    "TrainConfig",
    "Vocabulary",
    "build_model",
    "compute_and_save",
    "compute_image_features",
    "compute_query_features",
    "dataset_for_cache",
    "evaluate",
    "exact_search",
    "generate_css",
    "image_transform",
    "load_checkpoint",
    "load_dataset",
    "load_feature_cache",
    "load_model",
    "recall_at_ks",
    "recall_from_features",
    "tokenize",
    "train",
]
