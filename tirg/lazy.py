"""Package attributes that import their module on first use (PEP 562), shared by tirg and tirg.hashing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: dict[str, tuple[str, ...]]
) -> tuple[dict[str, str], Callable[[str], Any], Callable[[], list[str]]]:
    """(name -> module, the package's `__getattr__`, its `__dir__`) for `exports` (module -> names).

    A name's first lookup imports its module and stores the value in `namespace` (the package's
    globals), so later lookups do not call `__getattr__` again.
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of})

    return module_of, __getattr__, __dir__
