"""Enrollment of new classes into a trained cosine-head run (seed 002 §3; issue 11)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferjax import enrollment, run, train
from ferjax.data import load_dataset
from ferjax.enroll import enroll, set_threshold, validation_cosines
from ferjax.errors import ConfigError, DataError, RunError
from ferjax.evaluate import evaluate_runs
from ferjax.predict import Predictor
from tests import toy_data
from tests.test_train import toy_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory):
    """An LMCL run on the toy set with class c6 left out of training."""
    workdir = tmp_path_factory.mktemp("lmcl")
    train.train_and_evaluate(toy_config(loss="lmcl", exclude_classes="c6", num_epochs=3), workdir)
    return workdir


@pytest.fixture()
def fresh(cosine_run, tmp_path):
    """A copy of the run to enroll into (each test starts with no enrollment)."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(cosine_run, copy)
    return copy


def held_out_images(count: int, seed: int = 5):
    split = toy_data.make_split(200, seed)
    return split.images[split.labels == 6][:count]


def save_images(folder: Path, images) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:03d}.png"
        Image.fromarray(image[..., 0]).save(path)
        paths.append(str(path))
    return paths


def test_excluded_class_is_absent_from_every_split(cosine_run):
    model = run.load_run(cosine_run)
    assert model.class_names == [f"c{i}" for i in range(6)] and model.enrollment is None
    splits = load_dataset(model.config)
    for source in (splits.train, splits.validation, splits.test):
        labels = np.asarray([source[i]["label"] for i in range(len(source))])
        assert labels.max() <= 5 and np.array_equal(labels, source.labels)
    with pytest.raises(ConfigError, match="c9 not in dataset"):
        load_dataset(toy_config(exclude_classes="c9"))


def test_without_enrollment_predictions_are_the_models_own(fresh):
    model = run.load_run(fresh)
    images = toy_data.make_split(20, 7).images
    direct = model.model.apply(model.variables, np.asarray(images, np.float32) / 127.5 - 1, train=False).head.logits
    np.testing.assert_allclose(model.logits(images), np.asarray(direct), rtol=1e-5, atol=1e-5)  # float rounding only
    before = model.logits(images)
    enrollment.write(fresh, enroll(model, "new", save_images(fresh.parent / "imgs", held_out_images(10)), detect=False))
    after = run.load_run(fresh)
    assert after.class_names == [*model.class_names, "new", "unknown"]
    np.testing.assert_allclose(after.logits(images)[:, :6], before, atol=1e-4)  # the trained classes are untouched


def test_copies_of_one_image_put_its_embedding_at_the_centre(fresh):
    model = run.load_run(fresh)
    image = held_out_images(1)[0]
    paths = save_images(fresh.parent / "same", [image] * 10)
    enrolled = enroll(model, "copy", paths, n=10, detect=False)
    expected = enrollment.unit(model.embeddings(image[None]))[0]
    np.testing.assert_allclose(enrolled.centres[0], expected, atol=1e-5)
    enrollment.write(fresh, enrolled)
    after = run.load_run(fresh)
    cosine = after.logits(image[None])[0] / after.head_scale
    assert cosine[6] == pytest.approx(1.0, abs=1e-4) and after.class_names[int(np.argmax(cosine))] == "copy"


def test_the_threshold_answers_unknown(fresh):
    model = run.load_run(fresh)
    enrolled = enroll(model, "new", save_images(fresh.parent / "imgs", held_out_images(10)), detect=False)
    images = toy_data.make_split(30, 9).images
    for value, expect_unknown in (("0.9999", True), ("-0.99", False)):
        enrollment.write(fresh, set_threshold(model, enrolled, value))
        labels = [Predictor(fresh, detect=False).predict([im for im in images])[i].label for i in range(len(images))]
        assert (labels == ["unknown"] * len(images)) == expect_unknown
        assert expect_unknown or "unknown" not in labels


def test_calibrated_threshold_has_the_asked_false_accept_rate(fresh):
    model = run.load_run(fresh)
    enrolled = enroll(model, "new", save_images(fresh.parent / "imgs", held_out_images(10)), detect=False)
    calibrated = set_threshold(model, enrolled, "calibrate:0.2")
    cosines, labels = validation_cosines(model)
    hidden = cosines.copy()
    hidden[np.arange(len(labels)), labels] = -np.inf
    accepted = np.mean(hidden.max(axis=1) >= calibrated.threshold)
    assert 0.2 - 1 / len(labels) <= accepted <= 0.2 + 1 / len(labels)
    assert calibrated.threshold_rule.startswith("calibrate:0.2")


def test_evaluate_and_predict_score_the_enrolled_classes(fresh):
    model = run.load_run(fresh)
    enrollment.write(fresh, enroll(model, "new", save_images(fresh.parent / "imgs", held_out_images(10)), detect=False))
    rows, protocol = evaluate_runs([fresh], tta_mode="none")
    assert protocol["class_names"] == [f"c{i}" for i in range(6)] + ["new", "unknown"]
    assert rows[0].scores.probabilities.shape[1] == 8
    held_out = [im for im in held_out_images(12, seed=11)]
    labels = [p.label for p in Predictor(fresh, detect=False).predict(held_out)]
    assert len(labels) == len(held_out) and set(labels) <= set(protocol["class_names"])


def test_bad_inputs_are_clear_errors(fresh, tmp_path):
    model = run.load_run(fresh)
    paths = save_images(tmp_path / "few", held_out_images(4))
    with pytest.raises(ConfigError, match="only 4 image"):
        enroll(model, "new", paths, n=10, detect=False)
    with pytest.raises(ConfigError, match="already has a class"):
        enroll(model, "c0", paths, n=4, detect=False)
    blank = save_images(tmp_path / "blank", [np.zeros((60, 60, 1), np.uint8)] * 2)
    with pytest.raises(DataError, match="no face"):
        enroll(model, "new", blank, n=2, detect=True, detector="haar")
    with pytest.raises(ConfigError, match="calibrate:FAR"):
        enrollment.parse_threshold("calibrate:1.5")
    enrollment.write(fresh, enroll(model, "new", paths, n=4, detect=False))
    (fresh / enrollment.CENTRES_FILE).write_bytes(b"not the centres")
    with pytest.raises(RunError, match="damaged enrollment"):
        run.load_run(fresh)


def test_softmax_runs_cannot_enroll(tmp_path):
    workdir = tmp_path / "softmax"
    train.train_and_evaluate(toy_config(num_epochs=1), workdir)
    with pytest.raises(RunError, match="cosine head"):
        enroll(run.load_run(workdir), "new", [], n=1, detect=False)


def test_command_enrolls_lists_and_removes(fresh, tmp_path):
    folder = tmp_path / "new_class"
    save_images(folder, held_out_images(12))

    def command(*args):
        return subprocess.run([sys.executable, "-m", "ferjax.enroll", f"--workdir={fresh}", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)

    done = command("--class_name=new", f"--images={folder}", "--no_detect", "--threshold=0.5")
    assert done.returncode == 0, done.stderr
    record = json.loads((fresh / enrollment.ENROLLED_FILE).read_text())
    assert record["classes"][0]["n"] == 10 and record["threshold"] == 0.5
    again = command("--class_name=new", f"--images={folder}", "--no_detect")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already has a class" in again.stderr
    removed = command("--remove=new")
    assert removed.returncode == 0 and not (fresh / enrollment.ENROLLED_FILE).exists()
