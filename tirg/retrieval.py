"""Single-query retrieval on a feature cache: a test query from the cache, or any image plus any text.

The gallery side always comes from the cache (L2-normalised features); a custom query is
embedded with the checkpoint the cache was computed with, then searched the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from tirg.data import RetrievalDataset, image_transform
from tirg.data.base import ImageTransform
from tirg.errors import CacheError, DataError
from tirg.evaluate import l2_normalize
from tirg.features import FeatureCache
from tirg.index import exact_search
from tirg.models import ComposeModel
from tirg.plots_notebooks import retrieval_grid_figure


@dataclass(frozen=True)
class Retrieved:
    ids: list[int]  # gallery ids, best first
    scores: list[float]  # cosine similarity
    hits: list[bool] | None  # gallery caption == the query's target caption; None when unknown


def search_cache(cache: FeatureCache, feature: np.ndarray, k: int, exclude: int | None = None) -> tuple[list[int], list[float]]:
    """Top-k gallery ids and scores for one L2-normalised feature [d] or [1, d], `exclude` left out."""
    feature = np.asarray(feature, dtype=np.float32).reshape(1, -1)
    k = min(k, len(cache.gallery_features) - (exclude is not None))
    scores, ids = exact_search(
        feature, np.asarray(cache.gallery_features), k, exclude=None if exclude is None else np.array([exclude])
    )
    return [int(i) for i in ids[0]], [float(s) for s in scores[0]]


def cache_query(cache: FeatureCache, index: int, k: int) -> Retrieved:
    """Test query `index` of the cache, hits by target caption; its source image is excluded where the
    data set's protocol excludes it (TIRG's; FashionIQ keeps it)."""
    if not 0 <= index < len(cache.query_features):
        raise IndexError(f"query index {index} is outside the cache's {len(cache.query_features)} queries ({cache.path})")
    exclude = int(cache.query_sources[index]) if cache.exclude_source else None
    ids, scores = search_cache(cache, cache.query_features[index], k, exclude=exclude)
    target_caption = cache.target_captions[index]
    captions = cache.gallery_captions
    return Retrieved(ids, scores, [captions[i] == target_caption for i in ids])


def results_table(found: Retrieved, dataset: RetrievalDataset) -> pd.DataFrame:
    """One row per result, best first: rank, gallery id, caption, score, hit (when known) and the image file shown."""
    table = pd.DataFrame(
        {
            "rank": range(1, len(found.ids) + 1),
            "gallery id": found.ids,
            "caption": [dataset.captions[i] for i in found.ids],
            "score": found.scores,
            "file": [str(dataset.image_files[i]) for i in found.ids],
        }
    )
    if found.hits is not None:
        table.insert(4, "hit", found.hits)
    return table


def check_dataset_matches(cache: FeatureCache, dataset: RetrievalDataset) -> None:
    """Refuse a data set whose gallery is not the cache's (ids would show the wrong images)."""
    if len(dataset) != len(cache.gallery_features):
        raise CacheError(
            f"{dataset.name} {dataset.split} at {dataset.root} has {len(dataset)} images but the cache {cache.path} "
            f"has {len(cache.gallery_features)}: use dataset_for_cache(cache) for the cache's own data set"
        )


def query_transform(cache: FeatureCache, dataset: RetrievalDataset) -> ImageTransform:
    """The cache's preprocessing; where it kept the stored size (CSS), resize to the gallery's image size.

    A user's photo must reach the encoder at the size the gallery was embedded at, or its
    feature is not comparable.
    """
    size = cache.manifest["preprocessing"]["image_size"]
    return image_transform(size if size is not None else min(dataset.load_image(0).size))


def load_query_image(path: str | Path) -> Image.Image:
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"query image not found: {path} (set custom_image in the parameters cell)") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path} is not a readable image ({error})") from None


@torch.inference_mode()
def compose_query(
    model: ComposeModel, image: Image.Image, text: str, transform: ImageTransform, device: str | torch.device = "cpu"
) -> np.ndarray:
    """L2-normalised composed feature [1, d] of an image and a modification text (eval mode)."""
    model.eval()
    batch = transform(image.convert("RGB")).unsqueeze(0).to(device)
    composed = model.compose_img_text(batch, [text]).cpu().numpy().astype(np.float32)
    return l2_normalize(composed)


def cache_query_figure(cache: FeatureCache, dataset: RetrievalDataset, index: int, k: int = 16, columns: int = 4) -> Figure:
    """Source image with its text and ground truth, then the top-k with hits marked."""
    check_dataset_matches(cache, dataset)
    found = cache_query(cache, index, k)
    target = int(cache.query_targets[index])
    return retrieval_grid_figure(
        dataset.load_image(int(cache.query_sources[index])),
        str(cache.queries["text"].iloc[index]),
        [dataset.load_image(i) for i in found.ids],
        found.hits,
        columns,
        target_image=dataset.load_image(target) if target >= 0 else None,
    )


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
    feature = compose_query(model, image, text, query_transform(cache, dataset), device)
    ids, _ = search_cache(cache, feature, k)
    return retrieval_grid_figure(image, text, [dataset.load_image(i) for i in ids], None, columns)
