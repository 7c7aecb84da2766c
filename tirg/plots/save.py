"""The one way a figure reaches disk: atomically (a temporary file in the same folder, then a rename).

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no global
backend is chosen on import and notebooks keep their own display.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from tirg.fileio import atomic_write


def save_figure(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` in the format its suffix names (PNG without one); a crash leaves no half file."""
    file_format = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: figure.savefig(f, format=file_format, dpi=dpi, bbox_inches="tight"))


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes, cropped as `save_figure` crops it (for a notebook's display)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
