import importlib.util
import io
import json
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from tirg import interactive
from tirg.checkpoint import load_model
from tirg.data import load_dataset
from tirg.errors import CacheError, CheckpointError, OutputError
from tirg.features import compute_and_save, load_feature_cache
from tirg.interactive import (
    LiveFigure,
    RetrievalApp,
    chdir_to_repository_root,
    fresh_run_dir,
    require_checkpoint,
    require_feature_cache,
    show_tensorboard,
    train_hint,
)
from tirg.plots_notebooks import recall_table
from tirg.retrieval import cache_query, compose_query, load_query_image, query_transform, search_cache
from tirg.runtime import seed_everything
from tirg.train import TrainConfig, train


@pytest.fixture(scope="module")
def small_run(tiny_css, tmp_path_factory):
    """A one-iteration TIRG checkpoint on the tiny CSS data and its test feature cache."""
    root = tmp_path_factory.mktemp("interactive")
    seed_everything(0)
    config = TrainConfig(dataset_path=str(tiny_css), num_iters=1, batch_size=4, embed_dim=32, device="cpu", checkpoint_every=1)
    result = train(config, run_dir=root / "run")
    cache_dir = compute_and_save(result.checkpoint, root / "cache")
    return result.checkpoint, load_feature_cache(cache_dir, checkpoint=result.checkpoint), load_dataset("css", tiny_css, "test")


def test_cache_query_matches_a_brute_force_ranking(small_run):
    _, cache, _ = small_run
    index = 5
    found = cache_query(cache, index, k=6)
    scores = np.asarray(cache.gallery_features) @ np.asarray(cache.query_features[index])
    scores[cache.query_sources[index]] = -np.inf
    assert found.ids == np.argsort(-scores, kind="stable")[:6].tolist()
    assert found.scores == pytest.approx(np.sort(scores)[::-1][:6].tolist(), abs=1e-5)
    assert found.hits == [cache.gallery_captions[i] == cache.target_captions[index] for i in found.ids]
    with pytest.raises(IndexError, match="query index 9999"):
        cache_query(cache, 9999, k=3)


def test_a_custom_query_on_a_test_source_reproduces_the_cached_feature(small_run):
    checkpoint, cache, dataset = small_run
    model, _ = load_model(checkpoint)
    index = 3
    image = load_query_image(cache.gallery["path"].iloc[int(cache.query_sources[index])])
    feature = compose_query(model, image, str(cache.queries["text"].iloc[index]), query_transform(cache, dataset))
    np.testing.assert_allclose(feature[0], cache.query_features[index], atol=1e-5)
    # A larger photo is brought to the gallery's 64x64 first.
    assert query_transform(cache, dataset)(image.resize((200, 150))).shape == (3, 64, 64)
    # Without the exclusion the source image may rank anywhere; with it, the order is the cached query's.
    ids, _ = search_cache(cache, feature, 5, exclude=int(cache.query_sources[index]))
    assert ids == cache_query(cache, index, 5).ids


def test_retrieval_app_builds_and_searches_headless(small_run):
    checkpoint, cache, dataset = small_run
    model, _ = load_model(checkpoint)
    app = RetrievalApp(model, cache, dataset, k=4, columns=2)
    app.query.value = 2
    assert str(cache.queries["text"].iloc[2]) in app.text.placeholder
    assert isinstance(app.figure(), Figure)
    app.text.value = "add large red circle to top-left"
    assert isinstance(app.figure(), Figure)
    app.source.value = "uploaded image"
    with pytest.raises(Exception, match="no image uploaded"):
        app.figure()
    buffer = io.BytesIO()
    Image.new("RGB", (90, 70), (200, 30, 30)).save(buffer, format="PNG")
    app.upload.value = ({"name": "red.png", "type": "image/png", "size": len(buffer.getvalue()), "content": memoryview(buffer.getvalue()), "last_modified": datetime.now(timezone.utc)},)
    assert isinstance(app.figure(), Figure)
    app.text.value = ""
    app.search()  # a bad input becomes a message in the output area
    assert "type a modification text" in app.output.outputs[-1]["text"]


def test_missing_artefacts_name_the_command_that_creates_them(tmp_path):
    with pytest.raises(CheckpointError, match="tirg train --dataset css --dataset_path data/css --model tirg"):
        require_checkpoint(tmp_path / "none.pth", train_hint())
    with pytest.raises(CacheError, match=f"python compute_and_save.py --checkpoint ck.pth --out {tmp_path / 'cache'}"):
        require_feature_cache(tmp_path / "cache", "ck.pth")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "latest_checkpoint.pth").write_bytes(b"x")
    assert require_checkpoint(tmp_path / "run", "") == tmp_path / "run" / "latest_checkpoint.pth"


def test_fresh_run_dir_refuses_or_replaces_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(asdict(TrainConfig())))
    with pytest.raises(FileExistsError, match="overwrite_run"):
        fresh_run_dir(tmp_path / "run", overwrite=False)
    assert not (fresh_run_dir(tmp_path / "run", overwrite=True)).exists()
    # A folder that is not a training run is never removed, even with overwrite.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"theme": "dark"}')
    with pytest.raises(OutputError, match=r"holds no tirg training run but config.json"):
        fresh_run_dir(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "config.json").read_text() == '{"theme": "dark"}'
    with pytest.raises(OutputError, match="is a file"):
        fresh_run_dir(tmp_path / "mine" / "config.json", overwrite=True)


def test_tensorboard_is_skipped_with_a_note_when_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(interactive.importlib.util, "find_spec", lambda name: None if name == "tensorboard" else importlib.util.find_spec(name))
    assert "not installed" in show_tensorboard(tmp_path)


def test_live_figure_writes_its_file_outside_ipython(tmp_path):
    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    LiveFigure(tmp_path / "live.png").update(figure)
    with Image.open(tmp_path / "live.png") as image:
        assert image.format == "PNG"


def test_chdir_to_repository_root_finds_the_clone(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "notebooks")
    assert chdir_to_repository_root() == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="pyproject.toml"):
        chdir_to_repository_root("/")


def test_recall_table_formats_mean_and_std_in_percent():
    import pandas as pd

    summary = pd.DataFrame([
        {"method": "exact", "recall@1_mean": 0.5, "recall@1_std": 0.01, "query_s_mean": 0.2, "query_s_std": float("nan"), "candidates_mean": 1000.0},
    ])  # fmt: skip
    table = recall_table(summary, (1,))
    assert table.loc["exact", "R@1"] == "50.00 ± 1.00"
    assert table.loc["exact", "Time (s)"] == "0.200 ± 0.000"
