"""Single-query retrieval: a test query, or any image plus any text, against a gallery.

The gallery is a feature cache (L2-normalised features computed by `compute_and_save`) or a data
set split embedded on the spot; a custom query is embedded with the checkpoint, then searched the
same way. Notebook 03, its widget app and `tirg retrieve` all go through these functions; they return
results, and tirg.plots.retrieval_figures draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError

from tirg.checkpoint import load_model
from tirg.config import TrainConfig, with_query_texts
from tirg.data import RetrievalDataset, image_transform, load_dataset
from tirg.data.base import ImageTransform
from tirg.errors import CacheError, DataError
from tirg.evaluate import compute_image_features, l2_normalize
from tirg.features import FeatureCache, dataset_for_cache, file_sha256, load_feature_cache
from tirg.index import exact_search
from tirg.models import ComposeModel
from tirg.runtime import resolve_device


@dataclass(frozen=True)
class Retrieved:
    ids: list[int]  # gallery ids, best first
    scores: list[float]  # cosine similarity
    hits: list[bool] | None  # gallery caption == the query's target caption; None when unknown


def search_gallery(gallery: np.ndarray, feature: np.ndarray, k: int, exclude: int | None = None) -> tuple[list[int], list[float]]:
    """Top-k ids and scores of L2-normalised `gallery` [N, d] for one L2-normalised feature [d] or [1, d], `exclude` left out."""
    feature = np.asarray(feature, dtype=np.float32).reshape(1, -1)
    k = min(k, len(gallery) - (exclude is not None))
    scores, ids = exact_search(feature, np.asarray(gallery), k, exclude=None if exclude is None else np.array([exclude]))
    return [int(i) for i in ids[0]], [float(s) for s in scores[0]]


def search_cache(cache: FeatureCache, feature: np.ndarray, k: int, exclude: int | None = None) -> tuple[list[int], list[float]]:
    """Top-k gallery ids and scores of the cache for one L2-normalised feature, `exclude` left out."""
    return search_gallery(cache.gallery_features, feature, k, exclude)


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


def photo_transform(image_size: int | None, dataset: RetrievalDataset) -> ImageTransform:
    """Evaluation's preprocessing for any photo; where it keeps the stored size (CSS), resize to the gallery's.

    A user's photo must reach the encoder at the size the gallery was embedded at, or its
    feature is not comparable.
    """
    return image_transform(image_size if image_size is not None else min(dataset.load_image(0).size))


def query_transform(cache: FeatureCache, dataset: RetrievalDataset) -> ImageTransform:
    """`photo_transform` at the cache's recorded image size."""
    return photo_transform(cache.manifest["preprocessing"]["image_size"], dataset)


def load_query_image(path: str | Path) -> Image.Image:
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"query image not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"query image {path} is a folder, not an image file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"query image {path} is not a readable image ({error})") from None


@torch.inference_mode()
def compose_query(
    model: ComposeModel, image: Image.Image, text: str, transform: ImageTransform, device: str | torch.device = "cpu"
) -> np.ndarray:
    """L2-normalised composed feature [1, d] of an image and a modification text (eval mode)."""
    model.eval()
    batch = transform(image.convert("RGB")).unsqueeze(0).to(device)
    composed = model.compose_img_text(batch, [text]).cpu().numpy().astype(np.float32)
    return l2_normalize(composed)


@dataclass(frozen=True)
class Gallery:
    """L2-normalised features of a data set split's images, from a feature cache or embedded now."""

    dataset: RetrievalDataset  # ids index its images and captions
    features: np.ndarray  # [N, d]
    image_size: int | None  # evaluation's preprocessing size; None: the stored size (CSS)
    query_features: np.ndarray | None = None  # a cache's composed test queries, in `dataset.queries` order

    @classmethod
    def from_cache(cls, cache: FeatureCache, dataset: RetrievalDataset) -> Gallery:
        image_size = cache.manifest["preprocessing"]["image_size"]
        return cls(dataset, cache.gallery_features, image_size, cache.query_features)

    @classmethod
    def embed(
        cls,
        model: ComposeModel,
        dataset: RetrievalDataset,
        image_size: int | None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> Gallery:
        images = compute_image_features(model, dataset, image_transform(image_size), batch_size, device=device, progress=progress)
        return cls(dataset, l2_normalize(images), image_size)


def check_query_index(dataset: RetrievalDataset, index: int) -> None:
    if not 0 <= index < len(dataset.queries):
        raise ValueError(f"--query_index {index}: {dataset.name} {dataset.split} has {len(dataset.queries)} test queries")


@dataclass(frozen=True)
class RetrievalResult:
    dataset: RetrievalDataset  # the gallery's data set: `found.ids` index its images
    query_path: str  # the photo, or the test query's source image
    query_image: Image.Image
    text: str
    found: Retrieved
    target: int | None = None  # the ground-truth gallery id, for a test query with its own text
    same_as_query: int | None = None  # the gallery id of the query photo itself, shown first and left out of `found`

    def rows(self) -> list[dict]:
        """One dict per result, best first: rank, gallery id, image path, caption, score, hit (None when unknown)."""
        hits = self.found.hits
        return [
            {
                "rank": rank + 1,
                "id": index,
                "path": str(self.dataset.image_files[index]),
                "caption": self.dataset.captions[index],
                "score": score,
                "hit": None if hits is None else hits[rank],
            }
            for rank, (index, score) in enumerate(zip(self.found.ids, self.found.scores))
        ]


def query_by_index(
    gallery: Gallery,
    index: int,
    k: int,
    text: str | None = None,
    model: ComposeModel | None = None,
    device: str | torch.device = "cpu",
) -> RetrievalResult:
    """Test query `index` of the gallery's split: its source image with its own text (hits marked, ground truth
    shown) or with another `text` (nothing marked: the ground truth answers the query's own text).

    The source image is left out of the results where the data set's protocol says so (not FashionIQ).
    A cache's composed feature is used where it exists; otherwise `model` composes the query.
    """
    dataset = gallery.dataset
    check_query_index(dataset, index)
    query = dataset.queries[index]
    text = text or query.text
    own_text = text == query.text
    source = dataset.load_image(query.source)
    if own_text and gallery.query_features is not None:
        feature = np.asarray(gallery.query_features[index])
    elif model is None:
        raise ValueError("a model is needed to compose this query (a gallery without cached query features, or another text)")
    else:
        feature = compose_query(model, source, text, photo_transform(gallery.image_size, dataset), device)
    ids, scores = search_gallery(gallery.features, feature, k, query.source if dataset.exclude_source else None)
    source_path = str(dataset.image_files[query.source])
    if not own_text:
        return RetrievalResult(dataset, source_path, source, text, Retrieved(ids, scores, None))
    hits = [dataset.captions[i] == query.target_caption for i in ids]
    return RetrievalResult(dataset, source_path, source, text, Retrieved(ids, scores, hits), query.target)


def query_by_photo(
    model: ComposeModel,
    gallery: Gallery,
    image: Image.Image,
    text: str,
    k: int,
    device: str | torch.device = "cpu",
    path: str = "",
    set_aside_copy: bool = False,
) -> RetrievalResult:
    """Any image (at `path`, for the record) plus any text, composed by `model`; nothing is marked.

    set_aside_copy: a gallery image identical to the photo (`gallery_copy`) is left out of the top-k and
    recorded as `same_as_query`, as a test query's source is (the widget app); otherwise nothing is left out.
    """
    transform = photo_transform(gallery.image_size, gallery.dataset)
    copy = gallery_copy(model, gallery, image, transform, device) if set_aside_copy else None
    feature = compose_query(model, image, text, transform, device)
    ids, scores = search_gallery(gallery.features, feature, k, exclude=copy)
    return RetrievalResult(gallery.dataset, path, image, text, Retrieved(ids, scores, None), same_as_query=copy)


@torch.inference_mode()
def gallery_copy(
    model: ComposeModel, gallery: Gallery, image: Image.Image, transform: ImageTransform, device: str | torch.device = "cpu"
) -> int | None:
    """The id of a gallery image with the same pixels as `image`, or None.

    Candidates are the few gallery items whose image feature is nearly the photo's (one forward pass and
    one product with the gallery, where comparing pixels with every gallery image would read them all);
    the pixels then decide.
    """
    model.eval()
    feature = model.extract_img_feature(transform(image.convert("RGB")).unsqueeze(0).to(device)).cpu().numpy()
    scores, ids = exact_search(l2_normalize(feature.astype(np.float32)), np.asarray(gallery.features), min(5, len(gallery.features)))
    pixels = np.asarray(image.convert("RGB"))
    for score, index in zip(scores[0], ids[0]):
        if score < 0.999:
            break
        candidate = np.asarray(gallery.dataset.load_image(int(index)))
        if candidate.shape == pixels.shape and np.array_equal(candidate, pixels):
            return int(index)
    return None


def require_cache_of(cache: FeatureCache, checkpoint: str | Path) -> None:
    """Refuse a cache whose features were not computed with `checkpoint` (compared by content hash), naming both."""
    digest = file_sha256(checkpoint)
    recorded = cache.manifest.get("checkpoint_sha256")
    if recorded != digest:
        raise CacheError(
            f"{cache.path} was computed with checkpoint {cache.manifest.get('checkpoint')} (sha256 {recorded}), "
            f"not with {checkpoint} (sha256 {digest}); recompute it: `python compute_and_save.py --checkpoint {checkpoint} --out DIR`"
        )


@dataclass(frozen=True)
class RetrieveConfig:
    """One query against one gallery, as `tirg retrieve` takes it.

    The gallery is `cache` (a feature cache of `checkpoint`) or, without it, split `split` of
    `dataset` at `dataset_path` (defaults: the checkpoint's data set, its path, "test"), embedded now.
    The query is `image` (any photo) with `text`, or test query `query_index` of the gallery's split,
    whose own text is the default.
    """

    checkpoint: str
    cache: str | None = None
    dataset: str | None = None
    dataset_path: str | None = None
    split: str | None = None
    image: str | None = None
    query_index: int | None = None
    text: str | None = None
    top_k: int = 10
    batch_size: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        if (self.image is None) == (self.query_index is None):
            raise ValueError("give the query as --image PATH or as --query_index N (exactly one of them)")
        if self.cache is not None and (self.dataset or self.dataset_path or self.split):
            raise ValueError(
                "--cache brings its own data set and split: drop --dataset/--dataset_path/--split, or drop --cache to embed a split"
            )
        if self.text is not None and not self.text.strip():
            raise ValueError('--text is empty: give the modification to apply, e.g. --text "replace red with brown"')
        if self.image is not None and self.text is None:
            raise ValueError(f"--text is required with --image {self.image}: the modification to apply to the photo")
        if self.query_index is not None and self.query_index < 0:
            raise ValueError(f"--query_index {self.query_index}: expected a test query number >= 0")
        if self.top_k < 1 or self.batch_size < 1:
            raise ValueError(f"--top_k {self.top_k} and --batch_size {self.batch_size} must be >= 1")


def retrieve(config: RetrieveConfig, progress: bool = False) -> RetrievalResult:
    """`tirg retrieve`: load the checkpoint and the gallery, run the query; every input is checked before
    the gallery is embedded. A photo given as `image` is never left out, even when it is a gallery image."""
    photo = load_query_image(config.image) if config.image is not None else None
    device = resolve_device(config.device)
    model, state = load_model(config.checkpoint, device)
    run = TrainConfig.from_dict(state["config"])
    cache = None if config.cache is None else load_feature_cache(config.cache)
    if cache is not None:
        require_cache_of(cache, config.checkpoint)
        dataset = dataset_for_cache(cache)
    else:
        name = config.dataset or run.dataset
        options = replace(run, dataset=name).dataset_options()
        dataset = with_query_texts(run, load_dataset(name, config.dataset_path or run.dataset_path, config.split or "test", **options))
    if config.query_index is not None:
        check_query_index(dataset, config.query_index)
    if cache is not None:
        gallery = Gallery.from_cache(cache, dataset)
    else:
        gallery = Gallery.embed(model, dataset, run.resolved_image_size(), config.batch_size, device, progress)
    if photo is not None:
        return query_by_photo(model, gallery, photo, str(config.text), config.top_k, device, str(config.image))
    return query_by_index(gallery, int(config.query_index), config.top_k, config.text, model, device)  # type: ignore[arg-type]
