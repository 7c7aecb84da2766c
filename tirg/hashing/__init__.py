"""Deep supervised hashing (DNNH-style triplet hashing) and learned hashing of composed-retrieval features."""

from tirg.hashing.codes import hamming_distances, hamming_rank, pack_codes, sign_codes
from tirg.hashing.data import LabeledImages, load_cub, load_labeled_images, load_stanford_dogs
from tirg.hashing.loss import default_margin, triplet_hashing_loss, triplet_indices
from tirg.hashing.metrics import mean_average_precision, precision_at_k
from tirg.hashing.model import HashHead, HashNet
from tirg.hashing.sampler import ClassBalancedBatchSampler
from tirg.hashing.train import HashTrainConfig, evaluate_codes, train_hashing

__all__ = [
    "ClassBalancedBatchSampler",
    "HashHead",
    "HashNet",
    "HashTrainConfig",
    "LabeledImages",
    "default_margin",
    "evaluate_codes",
    "hamming_distances",
    "hamming_rank",
    "load_cub",
    "load_labeled_images",
    "load_stanford_dogs",
    "mean_average_precision",
    "pack_codes",
    "precision_at_k",
    "sign_codes",
    "train_hashing",
    "triplet_hashing_loss",
    "triplet_indices",
]
