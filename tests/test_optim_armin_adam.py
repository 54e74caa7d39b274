"""ArminAdam (SPEC §5) against an independent float64 NumPy implementation, plus checks of the bare
transformation; the battery every registered optimizer passes is tests/test_optim_battery.py."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax.optim import ScaleByArminAdamState, armin_adam, scale_by_armin_adam

STEPS = 25


def numpy_armin_adam(grads, p0, lr, b1, b2, eps, amsgrad, decay):
    """SPEC §5 written out in float64: returns the per-step updates and the final parameters."""
    m, v, v_hat, p = np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0), p0.copy()
    updates = []
    for t, g in enumerate(grads):
        m = b1 * m + (1 - b1) * g
        v = (1 - b2) ** 2 * (v + b2 * g * g)
        if amsgrad:
            v_hat = np.maximum(v_hat, v)
            step = m / (np.sqrt(v_hat / (1 - b2) ** 2) + eps)
        else:
            step = m / (np.sqrt(v) + eps)
        u = -lr / (1 + decay * t) * step
        updates.append(u)
        p = p + u
    return updates, p


def random_gradients(seed=0, shape=(48,)):
    """Gradients whose scale changes by up to 1000× between steps (exercises the running max)."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(shape) * rng.uniform(0.01, 10.0) for _ in range(STEPS)]
    return [g.astype(np.float32) for g in grads], rng.standard_normal(shape).astype(np.float32)


def run_jax(tx, grads, p0, dtype):
    update = jax.jit(tx.update)
    p = jnp.asarray(p0, dtype)
    state = tx.init(p)
    updates = []
    for g in grads:
        u, state = update(jnp.asarray(g, dtype), state, p)
        p = optax.apply_updates(p, u)
        updates.append(np.asarray(u, np.float64))
    return updates, np.asarray(p, np.float64)


@pytest.mark.parametrize("amsgrad", [True, False])
@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_matches_float64_numpy_reference(amsgrad, decay):
    grads, p0 = random_gradients()
    hp = dict(b1=0.8, b2=0.999, eps=1e-8, amsgrad=amsgrad, decay=decay)
    ref_u, ref_p = numpy_armin_adam([g.astype(np.float64) for g in grads], p0.astype(np.float64), 1e-3, **hp)
    got_u, got_p = run_jax(armin_adam(1e-3, **hp), grads, p0, jnp.float32)
    for t, (got, ref) in enumerate(zip(got_u, ref_u)):
        # Relative 1e-6, measured against each step's update scale: entries where m ≈ 0 by
        # cancellation carry float32 rounding that a pure elementwise ratio would magnify.
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max(), err_msg=f"step {t}")
    np.testing.assert_allclose(got_p, ref_p, rtol=1e-6, atol=1e-6 * np.abs(ref_p).max())


@pytest.mark.parametrize("amsgrad", [True, False])
@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_matches_float64_numpy_reference_elementwise_in_x64(amsgrad, decay):
    grads, p0 = random_gradients(seed=1)
    hp = dict(b1=0.9, b2=0.999, eps=1e-8, amsgrad=amsgrad, decay=decay)
    grads64 = [g.astype(np.float64) for g in grads]
    ref_u, ref_p = numpy_armin_adam(grads64, p0.astype(np.float64), 1e-3, **hp)
    with jax.enable_x64(True):
        got_u, got_p = run_jax(armin_adam(1e-3, **hp), grads64, p0.astype(np.float64), jnp.float64)
    for t, (got, ref) in enumerate(zip(got_u, ref_u)):
        np.testing.assert_allclose(got, ref, rtol=1e-6, err_msg=f"step {t}")
    np.testing.assert_allclose(got_p, ref_p, rtol=1e-6)


def minimise(f, p0, tx, steps):
    def body(carry, _):
        p, state = carry
        u, state = tx.update(jax.grad(f)(p), state, p)
        return (optax.apply_updates(p, u), state), None

    (p, _), _ = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))(p0)
    return p


def test_minimises_parabola():
    target = jnp.array([1.0, -2.0, 0.5])
    p = minimise(lambda p: jnp.sum((p - target) ** 2), jnp.zeros(3), armin_adam(0.1), 1000)
    np.testing.assert_allclose(p, target, atol=1e-4)


@pytest.mark.parametrize("b1", [0.8, 0.9])
def test_minimises_rosenbrock(b1):
    rosenbrock = lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
    p = minimise(rosenbrock, jnp.array([-1.2, 1.0]), armin_adam(0.3, b1=b1), 10_000)
    np.testing.assert_allclose(p, [1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("amsgrad", [True, False])
def test_keeps_parameter_dtypes(dtype, amsgrad):
    params = {"w": jnp.ones((4, 3), dtype), "b": jnp.zeros((3,), jnp.float32)}
    for tx in (armin_adam(1e-3, amsgrad=amsgrad), optax.inject_hyperparams(armin_adam)(1e-3, amsgrad=amsgrad)):
        state = tx.init(params)
        update = jax.jit(tx.update)
        for _ in range(3):
            grads = jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
        assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, params)
        assert params["w"].dtype == dtype and params["b"].dtype == jnp.float32
        inner = optax.tree_utils.tree_get(state, "mu")
        assert inner["w"].dtype == dtype and inner["b"].dtype == jnp.float32


def test_state_is_namedtuple_with_int32_count():
    state = scale_by_armin_adam().init({"w": jnp.ones(3)})
    assert isinstance(state, ScaleByArminAdamState)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()
    assert scale_by_armin_adam(amsgrad=False).init({"w": jnp.ones(3)}).nu_max is None


def test_no_recompilation_across_steps_with_time_decay():
    traces = []
    tx = armin_adam(1e-3, decay=0.01)

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = {"w": jnp.ones((5, 2)), "b": jnp.ones((2,), jnp.bfloat16)}
    state = tx.init(params)
    for i in range(6):
        params, state = step(params, state, jax.tree.map(lambda x: x * (i + 1), params))
    assert len(traces) == 1


def test_inject_hyperparams_matches_reference_and_exposes_schedule():
    grads, p0 = random_gradients(seed=2)
    # Injected hyperparameters are float32 arrays, so 1 − b2 is taken in float32: compare
    # against the reference run with the float32-rounded b1, b2.
    b1, b2 = float(np.float32(0.8)), float(np.float32(0.999))
    schedule = optax.linear_schedule(1e-3, 1e-4, STEPS)
    ref_lr = [schedule(t) for t in range(STEPS)]
    tx = optax.inject_hyperparams(armin_adam)(learning_rate=schedule, b1=0.8, b2=0.999)
    state, update = tx.init(jnp.asarray(p0)), jax.jit(tx.update)
    p, p_ref = jnp.asarray(p0), p0.astype(np.float64)
    m, v_hat = np.zeros_like(p_ref), np.zeros_like(p_ref)
    v = np.zeros_like(p_ref)
    for t, g in enumerate(grads):
        u, state = update(jnp.asarray(g), state, p)
        p = optax.apply_updates(p, u)
        g64 = g.astype(np.float64)
        m = b1 * m + (1 - b1) * g64
        v = (1 - b2) ** 2 * (v + b2 * g64 * g64)
        v_hat = np.maximum(v_hat, v)
        p_ref = p_ref - float(ref_lr[t]) * m / (np.sqrt(v_hat / (1 - b2) ** 2) + 1e-8)
        np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), float(ref_lr[t]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p, np.float64), p_ref, rtol=1e-6)


def test_chain_and_mask():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda x: x + 1.0, params)
    tx = optax.chain(optax.clip_by_global_norm(1e3), optax.masked(armin_adam(1e-2), {"w": True, "b": False}))
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    plain, _ = armin_adam(1e-2).update(grads, armin_adam(1e-2).init(params), params)
    np.testing.assert_allclose(updates["w"], plain["w"], rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], grads["b"])  # masked out: passed through
