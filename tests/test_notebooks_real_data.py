"""Notebooks 02 and 03 headless on the Fashion200k and MIT-States fixture trees (real on-disk formats,
with images), the data set and paths injected through the parameters cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from notebook_runner import REPO_ROOT, run_notebook
from tirg.compare import draw_samples
from tirg.data import load_dataset
from tirg.evaluate import metrics_from_features
from tirg.features import dataset_for_cache, load_feature_cache
from tirg.retrieval import cache_query
from tirg.runtime import seed_everything
from tirg.train import TrainConfig, train

NOTEBOOKS = REPO_ROOT / "notebooks"
KS = (1, 5)  # the fixture galleries hold 6 test images
# A test image of each fixture and a text in that data set's style, for the custom query.
CUSTOM_QUERY = {
    "fashion200k": ("women/skirts/long/20/20_0.jpeg", "replace red with blue"),
    "mitstates": ("images/dry sand/img_0.jpg", "wet"),
}


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.load()
        assert min(image.size) > 50, (path, image.size)


@pytest.fixture(scope="module", params=["fashion200k", "mitstates"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A one-step checkpoint on the data set's fixture tree (32 px) and the notebooks' parameters for it."""
    name = request.param
    tree = request.getfixturevalue(f"{name}_tree")
    work = tmp_path_factory.mktemp(f"notebooks_{name}")
    seed_everything(0)
    config = TrainConfig(
        dataset=name, dataset_path=str(tree), loss="batch_based_classification", embed_dim=16, batch_size=4, num_iters=1,
        image_size=32, device="cpu", log_dir=str(work / "runs"),
    )  # fmt: skip
    checkpoint = train(config, run_dir=work / "run").checkpoint
    parameters = {
        "smoke": True, "checkpoint": str(checkpoint), "cache_dir": str(work / "cache"), "dataset_path": str(tree),
        "figures_dir": str(work / "figures"), "device": "cpu",
    }  # fmt: skip
    return {"name": name, "tree": tree, "work": work, "parameters": parameters}


def test_compute_recall_notebook_scores_the_real_loaders_by_their_own_protocol(run):
    work = run["work"]
    run_notebook(NOTEBOOKS / "02_compute_recall.ipynb", {**run["parameters"], "results_dir": str(work / "results"), "ks": KS}, work)
    for figure in ("figures/compare_result.png", "figures/lsh_bucket_sizes.png", "results/recall_at_k.png", "results/recall_vs_time.png"):
        assert_png(work / figure)
    assert "No hashing (exact)" in (work / "results" / "table.md").read_text()
    cache = load_feature_cache(work / "cache")
    assert cache.manifest["dataset"] == run["name"] and cache.manifest["dataset_path"] == str(run["tree"])
    # The tiny test split is smaller than a sample: each sample is a bootstrap of it (seed 0, as the notebook's),
    # and exact search's recall on it is the data set's own evaluation of those queries.
    runs = pd.read_csv(work / "results" / "runs.csv")
    exact = runs[runs["method"] == "exact"].set_index("repeat")
    dataset, n = dataset_for_cache(cache), len(cache.query_features)
    samples = draw_samples(n, n, 2, seed=0, bootstrap=True)
    for repeat, sample in enumerate(samples):
        expected = metrics_from_features(cache.query_features[sample], cache.gallery_features, dataset.query_subset(sample), KS)
        for k in KS:
            assert exact.loc[repeat, f"recall@{k}"] == pytest.approx(expected[f"R@{k}"])


def test_retrieve_example_notebook_shows_images_of_the_caches_data_set(run):
    work, tree = run["work"], run["tree"]
    image, text = CUSTOM_QUERY[run["name"]]
    parameters = {**run["parameters"], "query_index": 0, "custom_image": str(tree / image), "custom_text": text}
    nb = run_notebook(NOTEBOOKS / "03_retrieve_example.ipynb", parameters, work)
    assert_png(work / "figures" / "retrieval_random_query.png")
    assert_png(work / "figures" / "retrieval_custom_query.png")
    query_cell = next(cell for cell in nb.cells if "results_table(" in cell.source)
    printed = "".join(output.get("text", "") for output in query_cell.outputs)
    # The files behind query 0's top 4 (smoke), as the figure loads them, are listed: all test images of this tree.
    test_images = {str(path) for path in load_dataset(run["name"], tree, "test").image_files}
    train_images = {str(path) for path in load_dataset(run["name"], tree, "train").image_files}
    shown = [path for path in sorted(test_images | train_images) if path in printed]
    cache = load_feature_cache(work / "cache")
    ranked = [str(dataset_for_cache(cache).image_files[i]) for i in cache_query(cache, 0, 4).ids]
    assert sorted(shown) == sorted(ranked) and len(shown) == 4
    assert set(shown) <= test_images and not set(shown) & train_images
    widget_cell = next(cell for cell in nb.cells if "RetrievalApp(" in cell.source)
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in widget_cell.outputs)
