"""Optimizers, weight decay and learning-rate schedules selected by config (issue 4, SPEC §5)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ferjax import optim
from ferjax.errors import ConfigError

NAMES = ["armin_adam", "adam", "adamw", "sgd", "adadelta", "radam"]


def make_config(optimizer="armin_adam", lr=1e-3, weight_decay=0.0, num_epochs=4, **schedule):
    config = ml_collections.ConfigDict(
        dict(
            optimizer=optimizer,
            learning_rate=lr,
            weight_decay=weight_decay,
            num_epochs=num_epochs,
            schedule=optim.default_schedule_config(),
            optimizers=optim.OPTIMIZERS.default_config(),
        )
    )
    config.schedule.update(schedule)
    return config


def trainer_steps(tx, params, grads_fn, losses):
    """The trainer's call: ``tx.update(grads, opt_state, params, value=loss)``, jitted once."""

    @jax.jit
    def step(params, state, loss):
        updates, state = tx.update(grads_fn(params), state, params, value=loss)
        return optax.apply_updates(params, updates), state

    state, rates = tx.init(params), []
    for loss in losses:
        params, state = step(params, state, jnp.float32(loss))
        rates.append(float(optim.current_learning_rate(state)))
    return params, np.array(rates)


def test_all_config_names_are_registered():
    assert set(NAMES) <= set(optim.OPTIMIZERS.names())
    assert set(NAMES) <= set(optim.OPTIMIZERS.default_config().keys())


def test_armin_adam_from_config_equals_the_function():
    config = make_config("armin_adam", lr=1e-3)
    config.optimizers.armin_adam.update(b1=0.8, decay=0.01)
    tx_config = optim.make_optimizer(config, steps_per_epoch=4)
    tx_direct = optim.armin_adam(1e-3, b1=0.8, decay=0.01)
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    grads_fn = lambda p: {"w": jnp.sin(3.0 * p["w"]) + 0.1}  # noqa: E731
    got, _ = trainer_steps(tx_config, params, grads_fn, [0.0] * 8)
    state, want = tx_direct.init(params), params
    for _ in range(8):
        u, state = tx_direct.update(grads_fn(want), state, want)
        want = optax.apply_updates(want, u)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-5)


def test_weight_decay_is_decoupled_for_adamw_and_l2_for_the_others():
    params = {"w": jnp.array([2.0, -4.0])}
    zero_grads = lambda p: {"w": jnp.zeros(2)}  # noqa: E731
    # adamw with zero gradients: p ← p − lr·wd·p exactly (decoupled).
    tx = optim.make_optimizer(make_config("adamw", lr=0.1, weight_decay=0.5), steps_per_epoch=1)
    got, _ = trainer_steps(tx, params, zero_grads, [0.0])
    np.testing.assert_allclose(got["w"], params["w"] * (1 - 0.1 * 0.5), rtol=1e-6)
    # sgd without momentum: the L2 gradient wd·p enters before the step.
    config = make_config("sgd", lr=0.1, weight_decay=0.5)
    config.optimizers.sgd.momentum = 0.0
    got, _ = trainer_steps(optim.make_optimizer(config, 1), params, zero_grads, [0.0])
    np.testing.assert_allclose(got["w"], params["w"] * (1 - 0.1 * 0.5), rtol=1e-6)
    # adam: the L2 gradient is normalised by Adam, so the first step is −lr·sign(p).
    tx = optim.make_optimizer(make_config("adam", lr=0.1, weight_decay=0.5), steps_per_epoch=1)
    got, _ = trainer_steps(tx, params, zero_grads, [0.0])
    np.testing.assert_allclose(got["w"], params["w"] - 0.1 * jnp.sign(params["w"]), rtol=1e-5)


def test_weight_decay_is_injected_as_a_hyperparameter():
    tx = optim.make_optimizer(make_config("armin_adam", weight_decay=1e-4), steps_per_epoch=1)
    state = tx.init({"w": jnp.ones(2)})
    np.testing.assert_allclose(state.hyperparams["weight_decay"], 1e-4)


def lr_trace(steps_per_epoch=10, num_epochs=12, losses=None, **schedule):
    tx = optim.make_optimizer(make_config(lr=1.0, num_epochs=num_epochs, **schedule), steps_per_epoch)
    losses = [1.0] * (steps_per_epoch * num_epochs) if losses is None else losses
    _, rates = trainer_steps(tx, {"w": jnp.ones(2)}, lambda p: {"w": jnp.ones(2)}, losses)
    return rates


def test_step_halving_follows_the_authors_formula():
    rates = lr_trace(name="step_halving")  # lr·0.5^⌊1 + 2e/8⌋, e = step // 10
    epochs = np.arange(120) // 10
    np.testing.assert_allclose(rates, 0.5 ** np.floor(1 + 2 * epochs / 8), rtol=1e-6)
    assert rates[0] == 0.5 and rates[40] == 0.25 and rates[80] == 0.125


def test_cosine_and_warmup():
    rates = lr_trace(name="cosine", cosine_final_factor=0.1)
    t = np.arange(120)
    np.testing.assert_allclose(rates, 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / 120)), rtol=1e-5)
    warm = lr_trace(name="cosine", warmup_epochs=2.0)
    np.testing.assert_allclose(warm[:20], (t[:20] + 1) / 20 * 0.5 * (1 + np.cos(np.pi * t[:20] / 120)), rtol=1e-5)
    np.testing.assert_allclose(lr_trace(name="constant", warmup_epochs=0.5)[:7], [0.2, 0.4, 0.6, 0.8, 1, 1, 1], rtol=1e-6)


def test_reduce_on_plateau_cuts_the_rate_after_patience_epochs_of_flat_loss():
    flat = lr_trace(name="reduce_on_plateau", plateau_factor=0.5, plateau_patience=2, num_epochs=6)
    # Epoch 0 sets the best mean loss; epochs 1 and 2 do not improve → halve after epoch 2,
    # used from the first step of epoch 3; again after epoch 4 (no cooldown).
    np.testing.assert_allclose(flat[:30], 1.0)
    np.testing.assert_allclose(flat[30:50], 0.5)
    np.testing.assert_allclose(flat[50:], 0.25)
    falling = lr_trace(name="reduce_on_plateau", plateau_patience=2, num_epochs=6, losses=np.linspace(2, 1, 60))
    np.testing.assert_allclose(falling, 1.0)


def test_reduce_on_plateau_requires_the_loss():
    tx = optim.make_optimizer(make_config(name="reduce_on_plateau"), steps_per_epoch=2)
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match="value=loss"):
        tx.update(params, tx.init(params), params)


@pytest.mark.parametrize(
    "config",
    [
        make_config("lamb"),
        make_config(name="exponential"),
        make_config(weight_decay=-1.0),
        make_config(lr=0.0),
        make_config(name="step_halving", halving_epochs=0.0),
        make_config(name="reduce_on_plateau", plateau_factor=2.0),
    ],
)
def test_bad_configs_raise_one_line_config_errors(config):
    with pytest.raises(ConfigError):
        optim.make_optimizer(config, steps_per_epoch=3)
