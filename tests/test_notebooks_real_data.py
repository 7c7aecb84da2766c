"""Notebooks 02 and 03 headless on the Fashion200k and MIT-States fixture trees (real on-disk formats,
with images) and on real bird photos in Fashion200k's format, the data set and paths injected through
the parameters cell; notebook 01 on the bird photos."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fixture_trees import write_cub_fashion200k
from notebook_runner import REPO_ROOT, run_notebook
from PIL import Image

from tirg.checkpoint import load_checkpoint
from tirg.compare import draw_samples
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.evaluate import metrics_from_features
from tirg.features import dataset_for_cache, load_feature_cache
from tirg.models.backbones import offline_imagenet_available
from tirg.retrieval import cache_query
from tirg.runtime import seed_everything
from tirg.training import train

NOTEBOOKS = REPO_ROOT / "notebooks"
KS = (1, 5)  # the fixture galleries hold 6 test images
# A test image of each fixture and a text in that data set's style, for the custom query.
CUSTOM_QUERY = {
    "fashion200k": ("women/skirts/long/20/20_0.jpeg", "replace red with blue"),
    "mitstates": ("images/dry sand/img_0.jpg", "wet"),
    "birds": ("birds/005.Crested_Auklet/Crested_Auklet_0006_1813.jpg", "replace crested with least"),  # a test photo
}
# The bird photos run through the pretrained backbone, frozen (notebook 01 exposes no backbone parameter: ResNet-18 there).
BACKBONE = {"birds": {"backbone": "efficientnet_lite0", "backbone_weights": "imagenet", "freeze_backbone": True}}


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.load()
        assert min(image.size) > 50, (path, image.size)


@pytest.fixture(scope="module")
def birds_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CUB-50 photos of seven classes in Fashion200k's format (tests/fixture_trees.py), 2 per class and split (14
    test queries: one smoke sample holds them all), 64 px."""
    return write_cub_fashion200k(
        tmp_path_factory.mktemp("birds") / "Fashion200k", shared_data / "cub50" / "CUB_200_2011", per_class=2, size=64
    )


@pytest.fixture(scope="module", params=["fashion200k", "mitstates", "birds"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A one-step checkpoint on the data set's fixture tree (32 px; the bird photos 64 px) and the notebooks' parameters for it."""
    name = request.param
    if name == "birds" and not offline_imagenet_available():
        pytest.skip("the 'pretrained' extra is not installed")
    tree = request.getfixturevalue(f"{name}_tree")
    dataset = "fashion200k" if name == "birds" else name
    work = tmp_path_factory.mktemp(f"notebooks_{name}")
    seed_everything(0)
    config = TrainConfig(
        dataset=dataset, dataset_path=str(tree), loss="batch_based_classification", embed_dim=16, batch_size=4, num_iters=1,
        image_size=64 if name == "birds" else 32, device="cpu", log_dir=str(work / "runs"), **BACKBONE.get(name, {}),
    )  # fmt: skip
    checkpoint = train(config, run_dir=work / "run").checkpoint
    parameters = {
        "smoke": True, "checkpoint": str(checkpoint), "cache_dir": str(work / "cache"), "dataset_path": str(tree),
        "figures_dir": str(work / "figures"), "device": "cpu",
    }  # fmt: skip
    return {"name": name, "dataset": dataset, "tree": tree, "work": work, "parameters": parameters}


def test_compute_recall_notebook_scores_the_real_loaders_by_their_own_protocol(run):
    work = run["work"]
    run_notebook(NOTEBOOKS / "02_compute_recall.ipynb", {**run["parameters"], "results_dir": str(work / "results"), "ks": KS}, work)
    for figure in ("figures/compare_result.png", "figures/lsh_bucket_sizes.png", "results/recall_at_k.png", "results/recall_vs_time.png"):
        assert_png(work / figure)
    assert "No hashing (exact)" in (work / "results" / "table.md").read_text()
    cache = load_feature_cache(work / "cache")
    assert cache.manifest["dataset"] == run["dataset"] and cache.manifest["dataset_path"] == str(run["tree"])
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
    test_images = {str(path) for path in load_dataset(run["dataset"], tree, "test").image_files}
    train_images = {str(path) for path in load_dataset(run["dataset"], tree, "train").image_files}
    shown = [path for path in sorted(test_images | train_images) if path in printed]
    cache = load_feature_cache(work / "cache")
    ranked = [str(dataset_for_cache(cache).image_files[i]) for i in cache_query(cache, 0, 4).ids]
    assert sorted(shown) == sorted(ranked) and len(shown) == 4
    assert set(shown) <= test_images and not set(shown) & train_images
    widget_cell = next(cell for cell in nb.cells if "RetrievalApp(" in cell.source)
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in widget_cell.outputs)


def test_train_notebook_on_real_bird_photos_keeps_the_best_checkpoint(birds_tree: Path, tmp_path: Path) -> None:
    parameters = {
        "smoke": True, "dataset": "fashion200k", "dataset_path": str(birds_tree), "image_size": 64, "val_fraction": 0.3,
        "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures"), "device": "cpu",
    }  # fmt: skip
    run_notebook(NOTEBOOKS / "01_train.ipynb", parameters, tmp_path)
    best = load_checkpoint(tmp_path / "run" / "best_checkpoint.pth")
    assert best["config"]["dataset_path"] == str(birds_tree) and best["iteration"] in (1, 2)
    assert {"laysan", "sooty", "auklet"} <= set(best["vocabulary"])  # trained on the bird captions
    assert_png(tmp_path / "figures" / "training_curves.png")
