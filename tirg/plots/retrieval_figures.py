"""Retrieval results (tirg.retrieval) drawn as the retrieval grid: a result, a cached test query, a custom query."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from PIL import Image

from tirg.data import RetrievalDataset
from tirg.features import FeatureCache
from tirg.models import ComposeModel
from tirg.plots.retrieval_grid import retrieval_grid_figure
from tirg.retrieval import Gallery, RetrievalResult, check_dataset_matches, query_by_index, query_by_photo


def retrieval_figure(result: RetrievalResult, columns: int = 4) -> Figure:
    """The seeds' figure: the query image titled with its text (and the ground truth when known), then the top-k, hits framed."""
    dataset = result.dataset
    return retrieval_grid_figure(
        result.query_image,
        result.text,
        [dataset.load_image(i) for i in result.found.ids],
        result.found.hits,
        columns,
        target_image=None if result.target is None else dataset.load_image(result.target),
        same_as_query=None if result.same_as_query is None else dataset.load_image(result.same_as_query),
    )


def cache_query_figure(cache: FeatureCache, dataset: RetrievalDataset, index: int, k: int = 16, columns: int = 4) -> Figure:
    """Source image with its text and ground truth, then the top-k with hits marked."""
    check_dataset_matches(cache, dataset)
    return retrieval_figure(query_by_index(Gallery.from_cache(cache, dataset), index, k), columns)


def custom_query_figure(
    model: ComposeModel,
    cache: FeatureCache,
    dataset: RetrievalDataset,
    image: Image.Image,
    text: str,
    k: int = 16,
    columns: int = 4,
    device: str | torch.device = "cpu",
) -> Figure:
    """Any image plus any text: the top-k from the cached gallery (no ground truth, so no hit marks)."""
    check_dataset_matches(cache, dataset)
    return retrieval_figure(query_by_photo(model, Gallery.from_cache(cache, dataset), image, text, k, device), columns)
