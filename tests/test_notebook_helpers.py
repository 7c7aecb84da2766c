import importlib.util
import io
import json
import logging
from dataclasses import asdict, replace
from datetime import datetime, timezone

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from tirg.checkpoint import load_model
from tirg.compare.report import recall_table
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.errors import CacheError, CheckpointError, OutputError
from tirg.features import compute_and_save, load_feature_cache
from tirg.models import build_model
from tirg.notebook import (
    LiveFigure,
    RetrievalApp,
    chdir_to_repository_root,
    notebook_logging,
    require_checkpoint,
    require_feature_cache,
    show_tensorboard,
    train_hint,
)
from tirg.notebook import display as notebook_display
from tirg.notebook import estimate as training_estimate
from tirg.retrieval import cache_query, compose_query, load_query_image, query_transform, search_cache
from tirg.runs import fresh_run_dir
from tirg.runtime import seed_everything
from tirg.text import Vocabulary
from tirg.training import train


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


def _upload(app: RetrievalApp, name: str, content: bytes) -> None:
    app.upload.value = (
        {
            "name": name,
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.now(timezone.utc),
        },
    )


def test_retrieval_app_follows_the_protocol_and_replaces_its_results(small_run):
    checkpoint, cache, dataset = small_run
    model, _ = load_model(checkpoint)
    app = RetrievalApp(model, cache, dataset, k=4, columns=2)
    source = int(cache.query_sources[2])
    app.query.value = 2
    assert str(cache.queries["text"].iloc[2]) in app.text.placeholder
    app.search()
    first_grid = app.grid.value
    assert first_grid[:8] == b"\x89PNG\r\n\x1a\n" and app.message.layout.display == "none"
    # A typed text composes the same source image anew; the source still never comes back.
    app.text.value = "add large red circle to top-left"
    assert source not in app.result().found.ids
    app.search()
    assert app.grid.value != first_grid and "gallery id" in app.table.value
    assert str(dataset.image_files[source]) in app.table.value.split("</p>")[0]  # the query's own file, named above the table

    # An error replaces the results with its message.
    app.source.value = "uploaded image"
    app.search()
    assert "no image uploaded" in app.message.value and app.message.layout.display is None
    assert app.grid.layout.display == "none" and app.table.layout.display == "none"

    # A gallery image uploaded: shown first as "same as query", left out of the ranking; the button names the file.
    with open(dataset.image_files[source], "rb") as file:
        _upload(app, "source.png", file.read())
    assert app.upload.description == "uploaded: source.png" and app.source.value == "uploaded image"
    result = app.result()
    assert result.same_as_query == source and source not in result.found.ids and len(result.found.ids) == 4
    app.search()
    assert app.message.layout.display == "none" and app.grid.layout.display is None
    assert "same as query" in app.table.value

    # Any other photo: nothing set aside; an empty text is refused by message.
    buffer = io.BytesIO()
    Image.new("RGB", (90, 70), (200, 30, 30)).save(buffer, format="PNG")
    _upload(app, "red.png", buffer.getvalue())
    assert app.result().same_as_query is None
    app.text.value = ""
    app.search()
    assert "type a modification text" in app.message.value
    # Choosing a test query again switches the source back.
    app.query.value = 3
    assert app.source.value == "test query"


def test_loading_a_checkpoint_logs_no_random_initialisation(small_run, caplog):
    checkpoint, _, _ = small_run
    with caplog.at_level(logging.INFO):
        load_model(checkpoint)
    assert not [r for r in caplog.records if "random initialisation" in r.getMessage()]
    with caplog.at_level(logging.INFO):
        build_model("tirg", Vocabulary(["<UNK>", "a"]), 8)  # a new model does say so
    assert [r for r in caplog.records if "random initialisation" in r.getMessage()]


def test_notebook_logging_shows_warnings_or_with_verbose_info(capsys):
    log = logging.getLogger("tirg.some_module")
    try:
        notebook_logging()
        log.info("an info line")
        log.warning("a warning")
        notebook_logging(verbose=True)
        log.info("a verbose line")
    finally:
        logging.basicConfig(level=logging.WARNING, force=True)
    err = capsys.readouterr().err
    assert "an info line" not in err and "WARNING tirg.some_module: a warning" in err and "INFO tirg.some_module: a verbose line" in err


def test_training_estimate_extrapolates_the_timed_warm_up(monkeypatch):
    # Warm-up steps of 5 s (start-up, not counted), 0.5 s, and 2.5 s for the step after the validation at 3.
    step_seconds = {1: 5.0, 2: 0.5, 3: 0.5, 4: 2.5, 5: 0.5, 6: 0.5}
    seen = {}

    def fake_train(config, run_dir, writer, evaluate_test):
        seen.update(config=config, evaluate_test=evaluate_test)
        for step, seconds in step_seconds.items():
            writer.add_scalar("train/total_loss", 1.0, step)
            writer.add_scalar("train/iterations_per_second", 1 / seconds, step)

    monkeypatch.setattr(training_estimate, "train", fake_train)
    config = TrainConfig(num_iters=100, eval_every=10, val_fraction=0.1, device="cpu")
    estimate = training_estimate.estimate_training(config, warmup_iters=6)
    assert (seen["config"].num_iters, seen["config"].log_every, seen["config"].eval_every, seen["evaluate_test"]) == (6, 1, 3, False)
    assert estimate.seconds_per_iteration == pytest.approx(0.5) and estimate.seconds_per_validation == pytest.approx(2.0)
    assert estimate.validation_points == 10 and estimate.seconds == pytest.approx(100 * 0.5 + 10 * 2.0)
    assert str(estimate).startswith("100 iterations on cpu: about 70 s")
    without_validation = training_estimate.estimate_training(replace(config, val_fraction=0.0), warmup_iters=6)
    assert seen["config"].eval_every == 0 and without_validation.validation_points == 0
    with pytest.raises(ValueError, match="warmup_iters=3"):
        training_estimate.estimate_training(config, warmup_iters=3)


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
    monkeypatch.setattr(
        notebook_display.importlib.util, "find_spec", lambda name: None if name == "tensorboard" else importlib.util.find_spec(name)
    )
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

    summary = pd.DataFrame(
        [
            {
                "method": "exact",
                "recall@1_mean": 0.5,
                "recall@1_std": 0.01,
                "query_s_mean": 0.2,
                "query_s_std": float("nan"),
                "candidates_mean": 1000.0,
            },
        ]
    )
    table = recall_table(summary, (1,))
    assert table.loc["exact", "R@1"] == "50.00 ± 1.00"
    assert table.loc["exact", "Time (s)"] == "0.200 ± 0.000"
