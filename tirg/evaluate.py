"""Recall@k evaluation of a composition model on a test split (TIRG's protocol)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tirg.data import ImageView, Query, RetrievalDataset
from tirg.data.base import ImageTransform
from tirg.index import exact_search
from tirg.metrics import DEFAULT_KS, encode_captions, recall_at_ks
from tirg.models import ComposeModel


def _image_loader(
    dataset: RetrievalDataset, transform: ImageTransform, indices: Sequence[int] | None, batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """Transformed images `indices` (default: all) of `dataset`, in order."""
    # A private generator: drawing a loader seed from the global one would shift dropout after a resume.
    return torch.utils.data.DataLoader(
        ImageView(dataset, transform, indices), batch_size=batch_size, num_workers=num_workers, generator=torch.Generator()
    )


@torch.inference_mode()
def compute_image_features(
    model: ComposeModel,
    dataset: RetrievalDataset,
    transform: ImageTransform,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """float32 [N, d] image features of every image in `dataset`, unnormalised."""
    model.eval()
    loader = _image_loader(dataset, transform, None, batch_size, num_workers)
    chunks = [model.extract_img_feature(images.to(device)).cpu() for images in tqdm(loader, "images", disable=not progress)]
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


@torch.inference_mode()
def compute_query_features(
    model: ComposeModel,
    queries: Sequence[Query],
    image_features: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """float32 [Q, d] composed features, composing each query's text with its source image's feature.

    Reusing the gallery's image features is exact in eval mode and saves a second pass over
    the images (the query sources are gallery images in every protocol here).
    """
    model.eval()
    source_features = torch.from_numpy(np.asarray(image_features))
    chunks = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        images = source_features[[query.source for query in batch]].to(device)
        texts = model.extract_text_feature([query.text for query in batch])
        chunks.append(model.compose(images, texts).cpu())
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


@torch.inference_mode()
def compose_queries_from_images(
    model: ComposeModel,
    dataset: RetrievalDataset,
    transform: ImageTransform,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """float32 [Q, d] composed features from each query's source image, for composers that need
    more than the pooled feature (tirg_lastconv works on the spatial map), as TIRG's test did."""
    model.eval()
    queries = dataset.queries
    loader = _image_loader(dataset, transform, [query.source for query in queries], batch_size, num_workers)
    chunks, start = [], 0
    for images in tqdm(loader, "queries", disable=not progress):
        texts = [query.text for query in queries[start : start + len(images)]]
        chunks.append(model.compose_img_text(images.to(device), texts).cpu())
        start += len(images)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


def query_features_for(
    model: ComposeModel,
    dataset: RetrievalDataset,
    transform: ImageTransform,
    image_features: np.ndarray,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Composed features of `dataset.queries`, from the cached image features where the model allows."""
    if model.composes_pooled_features:
        return compute_query_features(model, dataset.queries, image_features, device=device)
    return compose_queries_from_images(model, dataset, transform, batch_size, num_workers, device, progress)


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def cosine_neighbors(query_features: np.ndarray, gallery_features: np.ndarray, depth: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """int64 [Q, depth] gallery ids by cosine similarity, best first; `exclude[q]` (a gallery id) left out of row q."""
    _, neighbors = exact_search(l2_normalize(query_features), l2_normalize(gallery_features), depth, exclude=exclude)
    return neighbors


def recall_from_features(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    queries: Sequence[Query],
    gallery_captions: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[int, float]:
    """TIRG's protocol without a data set: the query's source image removed, hit = target caption among the top k."""
    depth = min(max(ks), len(gallery_captions) - 1)
    neighbors = cosine_neighbors(query_features, gallery_features, depth, np.array([query.source for query in queries], dtype=np.int64))
    target_labels, gallery_labels = encode_captions([q.target_caption for q in queries], gallery_captions)
    return recall_at_ks(neighbors, target_labels, gallery_labels, [k for k in ks if k <= depth])


def metrics_from_features(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    dataset: RetrievalDataset,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """The data set's metrics (`retrieval_metrics`) of cosine top-k over its gallery.

    The data set says how deep to search and whether each query's source image is removed;
    cut-offs deeper than the gallery allows are left out.
    """
    exclude = np.array([q.source for q in dataset.queries], dtype=np.int64) if dataset.exclude_source else None
    depth = min(dataset.search_depth(ks), len(gallery_features) - (exclude is not None))
    neighbors = cosine_neighbors(query_features, gallery_features, depth, exclude)
    return dataset.retrieval_metrics(neighbors, [k for k in ks if dataset.search_depth([k]) <= depth])


def evaluate(
    model: ComposeModel,
    dataset: RetrievalDataset,
    transform: ImageTransform,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """{'R@1': ..., 'R@5': ...} (and the data set's own metrics) on its queries, its images as the gallery."""
    if not dataset.queries:
        raise ValueError(f"{dataset.name} {dataset.split} at {dataset.root} has no test queries")
    image_features = compute_image_features(model, dataset, transform, batch_size, num_workers, device, progress)
    query_features = query_features_for(model, dataset, transform, image_features, batch_size, num_workers, device, progress)
    return metrics_from_features(query_features, image_features, dataset, ks)
