"""Fine-tuning from another run (issue 13 item 1): init_from, init_head, freeze_backbone_epochs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ferjax import checkpoint, data, finetune, optim, run, train
from ferjax.errors import ConfigError, RunError
from ferjax.models.classifier import build_model
from tests import toy_data
from tests.test_train import events, toy_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _datasets():
    toy_data.register()
    if "toy3" not in data.DATASETS:  # the toy images with 3 classes: another class set

        @data.DATASETS.register("toy3")
        def _toy3(config):
            def three(split):
                return toy_data.ArraySource(split.images, split.labels % 3)

            return data.DatasetSplits(name="toy3", class_names=["a", "b", "c"], train=three(toy_data.make_split(96, 0)),
                                      validation=three(toy_data.make_split(40, 1)), test=three(toy_data.make_split(44, 2)))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Run X: one epoch of the trainer tests' tiny CNN on the 7-class toy set."""
    workdir = tmp_path_factory.mktemp("x")
    train.train_and_evaluate(toy_config(num_epochs=1), workdir)
    return workdir


def assert_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def differs(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_frozen_backbone_keeps_xs_weights_and_statistics_and_a_resume_needs_no_x(source, tmp_path):
    x = Path(shutil.copytree(source, tmp_path / "x"))
    start = run.load_run(x)
    config = toy_config(init_from=str(x), init_head="keep", freeze_backbone_epochs=1, max_steps=6)  # 6 steps = 1 epoch
    train.train_and_evaluate(config, tmp_path / "ft")
    frozen = run.load_run(tmp_path / "ft", "latest")
    assert frozen.step == 6
    assert_equal(frozen.variables["params"]["backbone"], start.variables["params"]["backbone"])
    assert_equal(frozen.variables["batch_stats"], start.variables["batch_stats"])
    assert differs(frozen.variables["params"]["head"], start.variables["params"]["head"])  # the head trained
    record = json.loads((tmp_path / "ft" / "run.json").read_text())["init_from"]
    assert record == {
        "path": str(x.resolve()), "checkpoint": "best", "step": start.step, "class_names": start.class_names,
        "digests": checkpoint.digests(start.variables), "head": "kept",
    }
    assert all("learning_rate" in e for e in events(tmp_path / "ft") if e["split"] == "train")  # nested opt state

    shutil.rmtree(x)  # the run resumes from its own checkpoint: X is no longer needed
    config.max_steps = -1
    report = train.train_and_evaluate(config, tmp_path / "ft")
    assert report["steps"] == 12 and not report["stopped_early"]
    final = run.load_run(tmp_path / "ft", "latest").variables
    assert differs(final["params"]["backbone"], start.variables["params"]["backbone"])  # trained after epoch 1
    assert differs(final["batch_stats"], start.variables["batch_stats"])
    assert json.loads((tmp_path / "ft" / "run.json").read_text())["init_from"] == record


def test_other_classes_get_this_runs_own_head(source, tmp_path):
    # A frozen backbone and SGD with a negligible learning rate: the checkpoint after one step is the initial state.
    config = toy_config(dataset="toy3", init_from=str(source), freeze_backbone_epochs=1, optimizer="sgd",
                        learning_rate=1e-30, max_steps=1)
    train.train_and_evaluate(config, tmp_path)
    start = run.load_run(tmp_path, "latest").variables
    x = run.load_run(source).variables
    assert_equal(start["params"]["backbone"], x["params"]["backbone"])
    assert_equal(start["batch_stats"], x["batch_stats"])
    own = run.init_variables(build_model(config, 3)[0], config, config.seed)["params"]["head"]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-20), start["params"]["head"], own)
    assert start["params"]["head"]["dense"]["kernel"].shape == (16, 3)
    assert json.loads((tmp_path / "run.json").read_text())["init_from"]["head"] == "reinitialised (other classes)"


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"dataset": "toy3", "init_head": "keep"}, ConfigError, "config.init_head='keep' needs the same classes as"),
        ({"model": "camnet"}, ConfigError, "that run has model='baseline_cnn', this config has config.model='camnet'"),
        ({"channels": 3}, ConfigError, "that run has channels=1, this config has config.channels=3"),
        ({"image_size": 20}, ConfigError, "config.image_size=20"),
        ({"models.baseline_cnn.conv_features": (8, 32)}, ConfigError,
         r"params backbone/BatchNorm_1/bias is float32\[16\] there and float32\[32\] here "
         r"\(config keys that differ: models.baseline_cnn.conv_features\)"),
        ({"embedding_dim": 4}, ConfigError, r"params projection/bias is absent there .*embedding_dim"),
    ],
)
def test_mismatches_are_one_line_errors_naming_the_key_and_record_nothing(source, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message) as raised:
        train.train_and_evaluate(toy_config(init_from=str(source), **overrides), tmp_path)
    assert f"config.init_from={source}" in str(raised.value) or "init_head" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run.json").exists()  # fix the config and rerun in the same workdir


def test_a_missing_run_and_bad_values_are_config_errors(tmp_path):
    with pytest.raises(RunError, match=f"config.init_from={tmp_path / 'nope'}: .*not a ferjax run"):
        train.train_and_evaluate(toy_config(init_from=str(tmp_path / "nope")), tmp_path / "run")
    with pytest.raises(ConfigError, match="freeze_backbone_epochs needs config.init_from"):
        train.train_and_evaluate(toy_config(freeze_backbone_epochs=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="config.init_head='new'; valid: reinit, keep"):
        train.train_and_evaluate(toy_config(init_head="new"), tmp_path / "run")


def test_freeze_backbone_zeroes_all_but_the_heads_updates_for_the_frozen_steps():
    config = ml_collections.ConfigDict({"freeze_backbone_epochs": 2})
    tx = finetune.freeze_backbone(optax.inject_hyperparams(optax.sgd)(learning_rate=0.5), config, steps_per_epoch=1)
    params = {"backbone": {"w": jnp.ones(3)}, "projection": {"w": jnp.ones(2)}, "head": {"w": jnp.ones(2)}}
    state = tx.init(params)
    updates = []
    for _ in range(3):
        u, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
        updates.append(u)
    for u in updates[:2]:
        assert not np.any(u["backbone"]["w"]) and not np.any(u["projection"]["w"]) and np.all(u["head"]["w"] == -0.5)
    assert np.all(updates[2]["backbone"]["w"] == -0.5)
    assert float(optim.current_learning_rate(state)) == 0.5
    assert finetune.freeze_backbone(tx, ml_collections.ConfigDict({"freeze_backbone_epochs": 0}), 1) is tx


def test_the_command_line_prints_one_line(source, tmp_path):
    args = ["--config=configs/demo.py", "--config.datasets.demo.train_size=32", "--config.datasets.demo.validation_size=8",
            "--config.datasets.demo.test_size=8", "--config.image_size=16", "--config.channels=3",
            f"--config.init_from={source}", f"--workdir={tmp_path}"]
    result = subprocess.run([sys.executable, "-m", "ferjax.main", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (f"ferjax: error: config.init_from={source}: that run has channels=1, this config has "
                    "config.channels=3; fine-tuning needs the same channels")


def test_the_ckplus_finetune_config_uses_the_fer2013_recipes_model():
    from ferjax import config

    fine = config.load(ROOT / "configs" / "ckplus_finetune.py:3")
    pretrained = config.load(ROOT / "configs" / "fer2013.py")
    scratch = config.load(ROOT / "configs" / "ckplus.py:3")
    assert fine.model == pretrained.model
    assert fine.models.to_dict() == pretrained.models.to_dict()  # same architecture, or init_from would refuse
    assert fine.dtype == pretrained.dtype  # fine-tuned in the arithmetic it was pretrained in
    assert (fine.dataset, fine.datasets.ckplus.fold, fine.augment.to_dict()) == ("ckplus", 3, scratch.augment.to_dict())
    assert (fine.init_from, fine.init_head, fine.freeze_backbone_epochs) == ("runs/fer2013", "reinit", 2)
