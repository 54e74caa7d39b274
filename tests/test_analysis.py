"""Analysis figures (issue 11): embedding geometry, loss landscape, Grad-CAM, and the analyze command."""

import dataclasses
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from ferjax import analyze, losses, run, train
from ferjax.analysis import embedding, gradcam, landscape, taps
from ferjax.config import get_config
from ferjax.data import load_dataset, preprocess
from ferjax.errors import ConfigError, RunError
from ferjax.models import profile
from tests import toy_data
from tests.test_models import TINY
from tests.test_train import toy_config

REPO = Path(__file__).resolve().parents[1]
SMALL = analyze.Options(examples=32, landscape_resolution=3, landscape_line=5, landscape_examples=16, gradcam_images=4)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo config, one epoch of 64 images: a softmax run with the 64-d embedding of the baseline CNN."""
    config = runpy.run_path(str(REPO / "configs/demo.py"))["get_config"]()
    config.datasets.demo.update(train_size=64, validation_size=32, test_size=32)
    config.update(num_epochs=1, batch_size=32, eval_batch_size=32, progress_bar=False)
    workdir = tmp_path_factory.mktemp("demo")
    train.train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory):
    """A toy AM-Softmax run with a 3-d embedding (cosine head: its weights are the class centres)."""
    toy_data.register()
    workdir = tmp_path_factory.mktemp("sphere")
    train.train_and_evaluate(toy_config(loss="amsoftmax", embedding_dim=3, num_epochs=1), workdir)
    return workdir


@pytest.fixture(scope="module")
def analysed(demo_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    return out, analyze.analyze([demo_run], ["tsne", "angles", "landscape", "gradcam"], out, SMALL)


def test_embedding_dim_0_keeps_the_parameter_tree_and_3_gives_3d_embeddings():
    tiny = dict(conv_features=(4, 4, 4), dense_features=(8, 8, 8, 8))
    assert get_config().embedding_dim == 0
    trees = {}
    for dim in (None, 0, 3):
        config = profile.model_config("baseline_cnn", **tiny)  # no embedding_dim key: as older runs' run.json
        if dim is not None:
            config.embedding_dim = dim
        model = profile.build_classifier(config, 7)
        variables = profile.abstract_variables(model, (1, 48, 48, 1))
        trees[dim] = jax.tree.map(lambda a: a.shape, variables)
        x = jax.ShapeDtypeStruct((2, 48, 48, 1), jnp.float32)
        out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
        assert out.embedding.shape == (2, 3 if dim == 3 else 8) and out.head.logits.shape == (2, 7)
    assert trees[0] == trees[None] and set(trees[0]["params"]) == {"backbone", "head"}
    assert trees[3]["params"]["projection"]["kernel"] == (8, 3) and trees[3]["params"]["head"]["dense"]["kernel"] == (3, 7)


def test_figures_and_their_numbers_are_written(analysed):
    out, summary = analysed
    for name in ("tsne.png", "angles.png", "landscape.png", "gradcam.png", "analysis.json", "landscape_demo0.npz"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "analysis.json").read_text()) == summary
    angles = summary["angles"]["demo0"]
    assert angles["centres"] == "class means" and 0 <= angles["target_mean_deg"] <= 180
    assert summary["gradcam"]["demo0"] == {"layer": "backbone/BatchNorm_2", "class": "predicted"}


def test_landscape_at_the_trained_weights_is_the_trained_loss_on_the_same_images(analysed, demo_run):
    out, summary = analysed
    saved = np.load(out / "landscape_demo0.npz")
    trained = run.load_run(demo_run)
    train_split = load_dataset(trained.config).train
    images = trained.prepare([train_split[i]["image"] for i in saved["train_indices"]])
    labels = np.asarray([train_split[i]["label"] for i in saved["train_indices"]])
    head = trained.model.apply(trained.variables, preprocess.normalize(images), train=False).head
    expected = float(jnp.mean(losses.make_objective(trained.config).per_example(head, labels, trained.step)))
    assert saved["surface"].shape == (3, 3) and saved["line"].shape == (5,) and len(labels) == 16
    np.testing.assert_allclose([saved["surface"][1, 1], saved["line"][2]], expected, rtol=1e-5)
    assert summary["landscape"]["demo0"]["loss_at_trained_weights"] == pytest.approx(expected, rel=1e-5)
    assert saved["surface"].max() > expected  # a full filter-norm step away, the loss rises


def test_landscape_of_a_mixup_run_is_the_loss_of_unmixed_examples(analysed, demo_run):
    """The run's config having mixup on changes nothing: f(0, 0) is the plain loss."""
    saved = np.load(analysed[0] / "landscape_demo0.npz")
    trained = run.load_run(demo_run)
    with trained.config.unlocked():
        trained.config.mixup_alpha = 0.4
    train_split = load_dataset(trained.config).train
    images = trained.prepare([train_split[i]["image"] for i in saved["train_indices"]])
    labels = np.asarray([train_split[i]["label"] for i in saved["train_indices"]])
    surface = landscape.loss_landscape(trained, preprocess.normalize(images), labels, resolution=3, line_resolution=3)
    np.testing.assert_allclose(surface.surface[1, 1], saved["surface"][1, 1], rtol=1e-5)


def test_directions_are_filter_normalised_and_spare_biases_and_batchnorm():
    params = {"conv": {"kernel": jnp.arange(1.0, 1 + 3 * 3 * 2 * 4).reshape(3, 3, 2, 4), "bias": jnp.ones(4)},
              "bn": {"scale": jnp.ones(4), "bias": jnp.zeros(4)}}
    d = landscape.filter_normalized_direction(params, np.random.default_rng(0))
    norms = lambda a: np.linalg.norm(np.asarray(a).reshape(-1, a.shape[-1]), axis=0)  # noqa: E731
    np.testing.assert_allclose(norms(d["conv"]["kernel"]), norms(params["conv"]["kernel"]), rtol=1e-5)
    assert not np.any(d["conv"]["bias"]) and not np.any(d["bn"]["scale"]) and not np.any(d["bn"]["bias"])


def test_gradcam_follows_the_class_and_degrades_with_random_weights(demo_run):
    trained = run.load_run(demo_run)
    test_split = load_dataset(trained.config).test
    images = np.stack([test_split[i]["image"] for i in range(16)])
    cam = gradcam.GradCAM(trained)
    predicted = cam(images)
    assert predicted.maps.shape == (16, 48, 48) and predicted.maps.min() >= 0 and predicted.maps.max() <= 1
    np.testing.assert_array_equal(predicted.classes, trained.probabilities(images).argmax(-1))
    np.testing.assert_allclose(predicted.probabilities, trained.probabilities(images), atol=1e-5)
    first, second = cam(images, 0), cam(images, 1)
    assert set(first.classes) == {0} and np.mean(np.abs(first.maps - second.maps)) > 0.05
    # Adebayo et al. 2018: with randomly re-initialised weights the maps must change (rank correlation drops).
    random_weights = jax.jit(lambda: run.init_variables(trained.model, trained.config, seed=1234))()
    randomised = gradcam.GradCAM(dataclasses.replace(trained, variables=random_weights))(images, first.classes)
    same = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(first.maps, cam(images, 0).maps)]
    rho = [spearmanr(a.ravel(), b.ravel())[0] if b.any() else 0.0  # a map that vanished correlates with nothing
           for a, b in zip(first.maps, randomised.maps)]
    assert np.allclose(same, 1.0) and np.mean(rho) < 0.5, rho


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradcam_traces_for_every_registered_model(name):
    """The tap and the Grad-CAM graph of every model, traced abstractly (test_models.py compiles and runs
    each model's forward and backward pass; the values are checked on the trained run above)."""
    model = profile.build_classifier(profile.model_config(name, **TINY[name]), 7)
    variables = profile.abstract_variables(model, (1, 48, 48, 1))
    fmap = taps.choose(taps.feature_maps(model, variables, (1, 48, 48, 1)))
    assert fmap.path.startswith("backbone/") and fmap.shape[0] * fmap.shape[1] > 1
    maps, chosen, probabilities = jax.eval_shape(gradcam.grad_cam(model, fmap, 48), variables,
                                                 jax.ShapeDtypeStruct((2, 48, 48, 1), jnp.float32), jnp.array([-1, 3]))
    assert maps.shape == (2, 48, 48) and chosen.shape == (2,) and probabilities.shape == (2, 7)


def test_sphere_and_angles_of_two_runs_with_head_weights_as_centres(sphere_run, tmp_path):
    options = dataclasses.replace(SMALL, split="validation")
    summary = analyze.analyze([sphere_run, sphere_run], ["sphere", "angles"], tmp_path, options)
    assert (tmp_path / "sphere.png").stat().st_size > 0 and len(summary["angles"]) == 2
    assert {a["centres"] for a in summary["angles"].values()} == {"head weights"}
    trained = run.load_run(sphere_run)
    vectors = trained.embeddings(toy_data.make_split(5, 9).images)
    kernel = np.asarray(trained.variables["params"]["head"]["kernel"])
    centres, _ = embedding.class_centres(trained, vectors, np.zeros(5, int))
    cosine = embedding.unit(vectors) @ centres.T
    np.testing.assert_allclose(cosine, embedding.unit(vectors) @ (kernel / np.linalg.norm(kernel, axis=0)), atol=1e-6)


def test_bad_inputs_are_one_line_errors(demo_run, tmp_path):
    def message(error_type, *args, **kwargs):
        with pytest.raises(error_type) as caught:
            analyze.analyze(*args, **kwargs)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    small = lambda **options: dataclasses.replace(SMALL, **options)  # noqa: E731
    assert "unknown figure contour" in message(ConfigError, [demo_run], ["tsne", "contour"], tmp_path)
    assert "--config.embedding_dim=3" in message(RunError, [demo_run], ["sphere"], tmp_path)
    assert "must be odd" in message(ConfigError, [demo_run], ["landscape"], tmp_path, small(landscape_resolution=4))
    assert "not a class" in message(ConfigError, [demo_run], ["gradcam"], tmp_path, small(gradcam_class="smug"))
    assert "valid: backbone/" in message(ConfigError, [demo_run], ["gradcam"], tmp_path, small(gradcam_layer="backbone/No"))
    no_validation = tmp_path / "no_validation"
    shutil.copytree(demo_run, no_validation)
    record = json.loads((no_validation / "run.json").read_text())
    record["config"]["datasets"]["demo"]["validation_size"] = 0
    (no_validation / "run.json").write_text(json.dumps(record))
    assert "has no validation split" in message(RunError, [no_validation], ["tsne"], tmp_path, small(split="validation"))
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "analysis.json").exists()  # stopped before any work

def test_the_command_prints_one_line_for_a_bad_figure(demo_run):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "ferjax.analyze", f"--workdir={demo_run}", "--figures=tsne,contour"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0 and "unknown figure contour" in done.stderr
