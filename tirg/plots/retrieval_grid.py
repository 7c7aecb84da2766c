"""The retrieval grid: a query (and its ground truth) above its ranked results, hits framed green.

The one drawing of retrieval results; the demo, notebooks 03 and 04, `tirg retrieve` and the
widget app all call it (through tirg.plots.retrieval_figures where the results come from tirg.retrieval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

HIT_COLOR = "#1a9850"
MISS_COLOR = "#d73027"
SAME_COLOR = "tab:blue"  # the gallery's copy of an uploaded query image


def retrieval_grid_figure(
    query_image: Image.Image,
    query_text: str,
    results: Sequence[Image.Image],
    hits: Sequence[bool] | None,
    columns: int = 4,
    target_image: Image.Image | None = None,
    same_as_query: Image.Image | None = None,
    result_titles: Sequence[str] | None = None,
) -> Figure:
    """Query (and ground truth, when known) in the top row, then the top-k in a grid, hits framed green.

    `hits` None: no ground truth (a custom query); results get plain frames.
    `same_as_query`: the gallery's copy of the query image, shown first, marked, and not ranked.
    `result_titles`: one title per result instead of its rank (e.g. its Hamming distance).
    """
    shown = [(same_as_query, "same as query", SAME_COLOR)] if same_as_query is not None else []
    rows = 1 + math.ceil((len(results) + len(shown)) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.3 * rows))
    axes = np.array(figure.subplots(rows, columns)).reshape(rows, columns)
    for cell in axes.flat:
        cell.axis("off")
    header = [(query_image, f'query: "{query_text}"' if query_text else "query", "black")]
    if target_image is not None:
        header.append((target_image, "ground truth", HIT_COLOR))
    for position, (image, title, color) in enumerate(header):
        _draw_panel(axes[0, position], image, title, color)
    shown += [(image, *_result_title(rank, hits, result_titles)) for rank, image in enumerate(results)]
    for position, (image, title, color) in enumerate(shown):
        _draw_panel(axes[1 + position // columns, position % columns], image, title, color)
    figure.tight_layout()
    return figure


def _result_title(rank: int, hits: Sequence[bool] | None, titles: Sequence[str] | None) -> tuple[str, str]:
    """A result's title and frame colour: its rank (and "hit"), or its given title, coloured by hit or miss."""
    if hits is None:
        return (titles[rank] if titles else f"#{rank + 1}"), "black"
    if titles:
        return titles[rank], HIT_COLOR if hits[rank] else MISS_COLOR
    return (f"#{rank + 1} hit", HIT_COLOR) if hits[rank] else (f"#{rank + 1}", MISS_COLOR)


def _draw_panel(cell: Axes, image: Image.Image, title: str, color: str) -> None:
    cell.axis("on")
    cell.imshow(image, interpolation="nearest")
    cell.set_title(title, fontsize=8, color=color, wrap=True)
    cell.set_xticks([])
    cell.set_yticks([])
    for spine in cell.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3 if color != "black" else 1)
