"""One optax-style battery for every registered optimizer, as ``make_optimizer`` builds it (issue 10):
descent, dtypes kept, sharded parameters, injected hyperparameters, no recompilation, MultiSteps."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from ferjax import optim
from ferjax.parallel import make_mesh

NAMES = optim.OPTIMIZERS.names()
LEARNING_RATES = {"adadelta": 1.0, "sgd": 0.01}  # the seeds' rates (SPEC §5); 1e-2 for the rest


def make_tx(name, weight_decay=0.0, schedule="constant", steps_per_epoch=4):
    config = ml_collections.ConfigDict(
        dict(
            optimizer=name,
            learning_rate=LEARNING_RATES.get(name, 1e-2),
            weight_decay=weight_decay,
            num_epochs=2,
            schedule=optim.default_schedule_config(),
            optimizers=optim.OPTIMIZERS.default_config(),
        )
    )
    config.schedule.name = schedule
    return optim.make_optimizer(config, steps_per_epoch)


def quadratic(params):
    return sum(jnp.sum((p.astype(jnp.float32) - 1.0) ** 2) for p in jax.tree.leaves(params))


def run(tx, params, steps):
    """``steps`` jitted trainer-style updates (``value=loss``) on the quadratic; also counts traces."""
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        loss, grads = jax.value_and_grad(quadratic)(params)
        updates, state = tx.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state, updates

    state, updates = tx.init(params), None
    for _ in range(steps):
        params, state, updates = step(params, state)
    return params, state, updates, len(traces)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_descends_and_logs_its_learning_rate(name, weight_decay):
    params = {"w": jnp.zeros((3, 2))}
    final, state, _, _ = run(make_tx(name, weight_decay), params, steps=20)
    assert quadratic(final) < quadratic(params)
    np.testing.assert_allclose(optim.current_learning_rate(state), LEARNING_RATES.get(name, 1e-2), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mixed", [True, False], ids=["bf16+f32", "bf16"])
def test_keeps_dtypes_and_float32_hyperparameters(name, mixed):
    params = {"w": jnp.full((4, 3), 0.5, jnp.bfloat16)} | ({"b": jnp.zeros((3,), jnp.float32)} if mixed else {})
    final, state, updates, traces = run(make_tx(name, weight_decay=1e-4), params, steps=3)
    dtypes = jax.tree.map(lambda x: x.dtype, params)
    assert jax.tree.map(lambda x: x.dtype, final) == dtypes
    assert jax.tree.map(lambda x: x.dtype, updates) == dtypes
    assert traces == 1  # the state kept its dtypes
    assert all(v.dtype == jnp.float32 for v in state.hyperparams.values())  # b2 = 0.999 is not rounded to 1
    assert all(np.all(np.isfinite(np.asarray(u, np.float32))) for u in jax.tree.leaves(updates))
    assert quadratic(final) < quadratic(params)


@pytest.mark.parametrize("name", NAMES)
def test_sharded_parameters_match_unsharded(name):
    mesh = make_mesh()
    assert mesh.size == 8, "tests/conftest.py should give 8 CPU devices"
    rows = NamedSharding(mesh, P("data", None))
    params = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((16, 4)), jnp.float32), "b": jnp.ones(4)}
    local = run(make_tx(name, 1e-4), params, steps=4)[0]
    sharded_params = {"w": jax.device_put(params["w"], rows), "b": params["b"]}
    sharded = run(make_tx(name, 1e-4), sharded_params, steps=4)[0]
    assert sharded["w"].sharding.is_equivalent_to(rows, 2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), sharded, local)


@pytest.mark.parametrize("name", NAMES)
def test_every_numeric_hyperparameter_is_injected_and_used(name):
    tx = make_tx(name, weight_decay=1e-4)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    state = tx.init(params)
    numeric = {k for k, v in optim.OPTIMIZERS.default_config()[name].items() if not isinstance(v, (bool, str))}
    assert {"learning_rate", "weight_decay"} | numeric <= set(state.hyperparams)
    traces = []

    @jax.jit
    def update(state):
        traces.append(1)
        return tx.update({"w": jnp.array([0.5, 0.5, -0.5])}, state, params, value=jnp.float32(0.0))[0]["w"]

    small = update(state)
    state.hyperparams["weight_decay"] = jnp.float32(10.0)  # flips two gradient signs: any optimizer moves differently
    assert not np.allclose(update(state), small) and len(traces) == 1


@pytest.mark.parametrize("name", NAMES)
def test_no_recompilation_across_steps_and_epochs(name):
    tx = make_tx(name, weight_decay=1e-4, schedule="cosine", steps_per_epoch=2)  # the rate changes every step
    *_, traces = run(tx, {"w": jnp.ones((5, 2)), "b": jnp.ones((2,), jnp.bfloat16)}, steps=5)
    assert traces == 1


@pytest.mark.parametrize("name", NAMES)
def test_multisteps_accumulates_gradients(name):
    """``optax.MultiSteps(tx, k)``: k micro-batches equal one step on their mean gradient."""
    params = {"w": jnp.array([0.5, -1.0, 2.0])}
    micro = [{"w": jnp.array([1.0, 2.0, -1.0])}, {"w": jnp.array([3.0, -2.0, 0.0])}]
    accumulated = optax.MultiSteps(make_tx(name, 1e-4), every_k_schedule=2)
    state = accumulated.init(params)
    update = jax.jit(accumulated.update)
    updates, state = update(micro[0], state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)  # no step before the k-th micro-batch
    updates, state = update(micro[1], state, params)
    single = make_tx(name, 1e-4)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, *micro)
    expected, _ = single.update(mean, single.init(params), params)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-5, atol=1e-8)
