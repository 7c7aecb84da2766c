"""tirg: composed image retrieval (TIRG and baselines), fast exact and LSH search, deep hashing.

The package prints nothing, parses no arguments and reads no globals; the `tirg` command,
the top-level scripts and the notebooks are thin layers over these functions.

The names below load their module on first use (PEP 562), so `import tirg` or a search-only
import such as `tirg.index` does not pull in the training code and its dependencies.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from tirg.lazy import lazy_exports

# The public names, by the module that defines them.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "tirg.checkpoint": ("load_checkpoint", "load_model"),
    "tirg.config": ("TrainConfig",),
    "tirg.data": ("CSSGeneratorConfig", "generate_css", "image_transform", "load_dataset"),
    "tirg.evaluate": ("compute_image_features", "compute_query_features", "evaluate", "recall_from_features"),
    "tirg.features": ("compute_and_save", "dataset_for_cache", "load_feature_cache"),
    "tirg.index": ("exact_search",),
    "tirg.metrics": ("recall_at_ks",),
    "tirg.models": ("build_model",),
    "tirg.text": ("Vocabulary", "tokenize"),
    "tirg.training": ("train",),
}
_MODULE_OF, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

__all__ = sorted(_MODULE_OF)


class _Package(ModuleType):
    """The tirg package, keeping `tirg.evaluate` the function rather than its module (the same name).

    Importing a submodule binds it to the package attribute of its name; where that name is a
    public function of the same module, the function is bound instead, whichever imports first.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and _MODULE_OF.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
