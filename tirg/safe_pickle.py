"""Unpickling that rebuilds only plain data (NumPy arrays and builtins), never arbitrary code.

The original TIRG files are pickles (a NumPy object array holding dicts, a checkpoint with
an argparse Namespace). `pickle.load` on such a file can run any code it names; this loader
refuses every global outside an allow-list.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

import numpy as np

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
_BUILTIN_GLOBALS = {("builtins", name) for name in ("set", "frozenset", "tuple", "list", "dict", "complex", "slice")}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], extra_globals: frozenset[tuple[str, str]] = frozenset(), **kwargs: Any):
        super().__init__(file, **kwargs)
        self.allowed = _NUMPY_GLOBALS | _BUILTIN_GLOBALS | set(extra_globals)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is allowed in this file")
        return super().find_class(module, name)


def load_object_npy(path: str) -> Any:
    """Read a `.npy` file holding a pickled object array (np.save of a dict) without running code."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if dtype != np.dtype(object):
            return np.load(path, allow_pickle=False)
        value = RestrictedUnpickler(f, encoding="latin1").load()
    return value.item() if isinstance(value, np.ndarray) and value.shape == () else value
