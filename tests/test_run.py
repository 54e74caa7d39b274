"""A trained run: run.json, load_run / TrainedModel, TTA views, the evaluator (issue 9; SPEC §10)."""

import json
import shutil

import jax
import numpy as np
import pytest

from ferjax import evaluation, parallel, run, train
from ferjax.data import pipeline, preprocess, tta
from ferjax.errors import ConfigError, RunError
from tests import toy_data
from tests.test_train import events, toy_config


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    report = train.train_and_evaluate(toy_config(), workdir)
    return workdir, report


def test_run_json_describes_the_run(trained):
    workdir, _ = trained
    record = json.loads((workdir / "run.json").read_text())
    assert record["class_names"] == [f"c{i}" for i in range(7)] and record["dataset"] == "toy"
    assert record["input"] == {**record["input"], "image_size": 16, "channels": 1, "normalisation": "x / 127.5 - 1"}
    assert record["config"]["models"]["baseline_cnn"]["conv_features"] == [8, 16]
    assert record["ferjax_version"]


def test_loaded_model_reproduces_the_trainers_test_accuracy(trained):
    workdir, report = trained
    model = run.load_run(workdir)
    assert model.checkpoint == "best" and model.class_names == [f"c{i}" for i in range(7)]
    split = toy_data.make_split(44, 2)
    predictions = model.probabilities(split.images).argmax(-1)
    assert np.mean(predictions == split.labels) == pytest.approx(report["splits"]["test"]["accuracy"])


def test_images_are_prepared_like_the_pipeline_whatever_their_form(trained):
    model = run.load_run(trained[0])
    split = toy_data.make_split(10, 3)
    uint8 = model.logits(split.images)
    np.testing.assert_allclose(model.logits(split.images[..., 0]), uint8, atol=1e-6)  # (N, H, W)
    np.testing.assert_allclose(model.logits(split.images.astype(np.float32)), uint8, atol=1e-6)
    rgb = np.repeat(split.images, 3, axis=-1)  # gray -> RGB -> the run's gray: the same pixels
    np.testing.assert_allclose(model.logits(rgb), uint8, atol=1e-6)
    big = np.stack([preprocess.resize(im, 40) for im in split.images])  # resized exactly as eval_batches does
    expected = np.concatenate([b["image"] for b in pipeline.eval_batches(toy_data.ArraySource(big, split.labels), model.config)])
    np.testing.assert_array_equal(model.prepare(big), expected[:10])
    assert model.embeddings(split.images).shape[0] == 10
    with pytest.raises(ValueError, match="0, 255"):
        model.logits(split.images.astype(np.float32) * 2)


def test_a_run_recorded_before_newer_options_loads_with_their_defaults(trained, tmp_path):
    """run.json of a run older than ``dtype``, ``embedding_dim`` and ``convs_per_stage``."""
    old = tmp_path / "old"
    shutil.copytree(trained[0], old)
    record = json.loads((old / "run.json").read_text())
    for key in ("dtype", "embedding_dim"):
        del record["config"][key]
    del record["config"]["models"]["baseline_cnn"]["convs_per_stage"]
    (old / "run.json").write_text(json.dumps(record))
    loaded = run.load_run(old)
    assert (loaded.config.dtype, loaded.config.embedding_dim, loaded.config.models.baseline_cnn.convs_per_stage) == ("float32", 0, 1)
    split = toy_data.make_split(12, 5)
    np.testing.assert_allclose(loaded.logits(split.images), run.load_run(trained[0]).logits(split.images), atol=1e-6)


def test_loading_on_one_device_matches_eight(trained):
    split = toy_data.make_split(12, 4)
    eight = run.load_run(trained[0]).probabilities(split.images)
    one = run.load_run(trained[0], mesh=parallel.make_mesh(jax.devices()[:1])).probabilities(split.images)
    np.testing.assert_allclose(one, eight, atol=1e-5)


def test_a_killed_run_loads_from_its_latest_checkpoint(tmp_path):
    train.train_and_evaluate(toy_config(max_steps=3, num_epochs=2), tmp_path)
    model = run.load_run(tmp_path, "latest")
    assert model.checkpoint == "latest" and model.step == 3
    assert run.load_run(tmp_path).checkpoint == "latest"  # no best yet: "best" means the last one


def test_bad_workdirs_are_one_line_errors(tmp_path, trained):
    with pytest.raises(RunError, match="no run.json"):
        run.load_run(tmp_path)
    record = json.loads((trained[0] / "run.json").read_text())
    record["config"]["model"] = "resnet9000"
    (tmp_path / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="unknown model 'resnet9000'"):
        run.load_run(tmp_path)


def test_rerunning_a_finished_run_changes_nothing(trained):
    workdir, report = trained
    before = (workdir / "metrics.jsonl").read_text()
    again = train.train_and_evaluate(toy_config(progress_bar=True), workdir)  # a harmless difference
    assert again == json.loads((workdir / "report.json").read_text()) and again["steps"] == report["steps"]
    assert (workdir / "metrics.jsonl").read_text() == before


def test_resuming_with_another_config_names_the_keys(trained):
    with pytest.raises(RunError, match="learning_rate.*differ"):
        train.train_and_evaluate(toy_config(learning_rate=0.5), trained[0])


def test_resumed_run_writes_one_set_of_final_events(tmp_path):
    train.train_and_evaluate(toy_config(max_steps=4), tmp_path)
    train.train_and_evaluate(toy_config(), tmp_path)
    finals = [e["split"] for e in events(tmp_path) if e["split"].startswith("final_")]
    assert sorted(finals) == ["final_test", "final_validation"]


# ---------------------------------------------------------------------------- TTA views


def test_tta_views():
    config = toy_config()
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1)).astype(np.uint8)
    index = np.arange(3)
    plain, mirrored = (v(images, index) for v in tta.views("flip", config))
    np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    crops = [v(images, index) for v in tta.views("crops", config)]
    assert len(crops) == 5
    np.testing.assert_array_equal(crops[0], plain)  # the centre crop of the padded image
    np.testing.assert_array_equal(crops[1][:, 2:, 2:], plain[:, :-2, :-2])  # top-left corner: pad 2 = ceil(16/8)
    ten = [v(images, index) for v in tta.views("crops_flip", config)]
    assert len(ten) == 10
    for crop, same, mirrored in zip(crops, ten[:5], ten[5:]):
        np.testing.assert_array_equal(same, crop)
        np.testing.assert_array_equal(mirrored, crop[:, :, ::-1])  # the mirror of the same crop
    draws = tta.views("augment", config, samples=3, seed=5)
    first = draws[1](images, index)
    assert not np.array_equal(first, plain)
    np.testing.assert_array_equal(draws[1](images[2:], index[2:]), first[2:])  # per example, not per batch
    with pytest.raises(ConfigError, match="valid modes"):
        tta.views("mirror", config)


def test_evaluator_ensemble_and_fitted_weights():
    labels = np.array([0, 1, 1, 0])
    good = evaluation.Scores(np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]), labels)
    bad = evaluation.Scores(np.array([[0.4, 0.6], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8]]), labels)
    assert evaluation.metrics(good, ["a", "b"])["accuracy"] == 1.0
    assert evaluation.metrics(good, ["a", "b"])["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7, 0.6])))
    mixed = evaluation.ensemble([good, bad], [3, 1])
    np.testing.assert_allclose(mixed.probabilities, 0.75 * good.probabilities + 0.25 * bad.probabilities)
    weights = evaluation.fit_weights([good, bad])
    assert weights.sum() == pytest.approx(1.0) and weights[0] > 0.9
