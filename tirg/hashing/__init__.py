"""Deep supervised hashing (DNNH-style triplet hashing) and learned hashing of composed-retrieval features.

The names below load their module on first use (PEP 562), so importing one part, such as the
codes or the CUB loader, does not pull in the training loop.
"""

from __future__ import annotations

from tirg.lazy import lazy_exports

# The public names, by the module that defines them.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "tirg.hashing.codes": ("hamming_distances", "hamming_rank", "pack_codes", "sign_codes"),
    "tirg.hashing.data": ("LabeledImages", "load_cub", "load_labeled_images", "load_stanford_dogs"),
    "tirg.hashing.loss": ("default_margin", "triplet_hashing_loss", "triplet_indices"),
    "tirg.hashing.metrics": ("mean_average_precision", "precision_at_k"),
    "tirg.hashing.model": ("HashHead", "HashNet"),
    "tirg.hashing.sampler": ("ClassBalancedBatchSampler",),
    "tirg.hashing.train": ("HashTrainConfig", "evaluate_codes", "train_hashing"),
}
_MODULE_OF, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_MODULE_OF)
