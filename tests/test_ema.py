"""An exponential moving average of the weights (``config.ema_decay``; ferjax.run.ema_update)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax import checks, finetune, optim, parallel, run, train
from ferjax.checkpoint import Checkpoints, abstract_like
from ferjax.errors import ConfigError
from ferjax.models.classifier import build_model
from tests import toy_data
from tests.test_init_from import differs
from tests.test_train import assert_params_close, events, toy_config


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


def test_the_average_follows_the_warmed_up_recursion():
    """ema_t = d_t·ema_{t−1} + (1 − d_t)·p_t, d_t = min(decay, t/(9 + t)) for the t-th update."""
    decay, ema = 0.5, {"w": jnp.zeros(3)}
    expected = np.zeros(3)
    for t in range(1, 12):
        params = {"w": jnp.full(3, float(t))}
        ema = run.ema_update(ema, params, jnp.int32(t), decay)
        d = min(decay, t / (9 + t))
        expected = d * expected + (1 - d) * t
        np.testing.assert_allclose(ema["w"], expected, rtol=1e-6)
    assert 1 / 10 < decay < 11 / 20, "the loop covers the warm-up and the constant decay after it"


@pytest.mark.parametrize("decay", [1.0, -0.1, float("nan")])
def test_an_average_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ConfigError, match=r"config\.ema_decay="):
        checks.check_training_config(toy_config(ema_decay=decay), parallel.make_mesh())


def _best_state(workdir, config):
    """The whole train state of ``workdir``'s best checkpoint."""
    model, _ = build_model(config, num_classes=7)
    tx = optim.make_optimizer(config, steps_per_epoch=4)
    mesh = parallel.make_mesh()
    template = jax.device_put(run.init_state(model, tx, config, config.seed), parallel.replicated(mesh))
    checkpoints = Checkpoints(workdir, read_only=True)
    try:
        step = checkpoints.best_step()
        state, _ = checkpoints.restore(step, abstract_like(template, parallel.replicated(mesh)), kind="best")
    finally:
        checkpoints.close()
    return step, state


def test_a_run_validates_selects_and_ships_the_average(tmp_path):
    config = toy_config(ema_decay=0.9)
    report = train.train_and_evaluate(config, tmp_path)
    step, state = _best_state(tmp_path, config)
    assert differs(state.ema_params, state.params), "the average is not the last weights"
    loaded = run.load_run(tmp_path, "best")
    assert loaded.weights == f"best (step {step}, average of the weights (ema_decay=0.9))"  # what reports say
    jax.tree.map(np.testing.assert_array_equal, loaded.variables["params"], jax.device_get(state.ema_params))
    # the final report evaluates what the loader loads: the validation figure it logged again
    validated = {e["step"]: e["accuracy"] for e in events(tmp_path) if e["split"] == "validation"}
    assert report["splits"]["validation"]["accuracy"] == pytest.approx(validated[step])
    validation = toy_data.make_split(40, 1)
    accuracy = np.mean(np.argmax(loaded.logits(validation.images), -1) == validation.labels)
    assert accuracy == pytest.approx(validated[step])


def test_an_interrupted_run_with_an_average_resumes_exactly(tmp_path):
    full = toy_config(ema_decay=0.9)
    train.train_and_evaluate(full, tmp_path / "full")
    train.train_and_evaluate(toy_config(ema_decay=0.9, max_steps=5), tmp_path / "resumed")
    train.train_and_evaluate(full, tmp_path / "resumed")
    assert_params_close(tmp_path / "full", tmp_path / "resumed", atol=1e-6)  # the loader's params: the average


def test_a_fine_tuned_run_averages_from_the_loaded_weights(tmp_path):
    source = tmp_path / "x"
    train.train_and_evaluate(toy_config(num_epochs=1), source)
    config = toy_config(ema_decay=0.9, init_from=str(source))
    model, _ = build_model(config, num_classes=7)
    tx = optim.make_optimizer(config, steps_per_epoch=4)
    mesh = parallel.make_mesh()
    state = run.init_state(model, tx, config, config.seed)
    started, _ = finetune.start_from(config, state, tx, [f"c{i}" for i in range(7)], mesh)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(started.ema_params), jax.device_get(started.params))
    assert differs(jax.device_get(started.params["backbone"]), jax.device_get(state.params["backbone"]))
