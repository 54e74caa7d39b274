"""Properties of the losses (SPEC §4): margin-0 reductions, ψ monotonic, finiteness at the
edges (cos = ±1, huge logits, bfloat16), device-count independence and compile caching."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import ferjax.losses as L
from ferjax.errors import ConfigError
from ferjax.heads import HEADS, HeadOutput
from ferjax.parallel import make_mesh

B, C = 16, 7


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        cos=rng.uniform(-1, 1, (B, C)).astype(np.float32),
        z=(3 * rng.standard_normal((B, C))).astype(np.float32),
        fn=rng.uniform(0.5, 3, B).astype(np.float32),
        wn=rng.uniform(0.5, 2, C).astype(np.float32),
        y=rng.integers(0, C, B),
    )


# Each loss as a function of (cos, z, feature_norm, weight_norm, labels); angular ones in both grad modes.
LOSS_FNS = {
    "softmax": lambda c, z, fn, wn, y: L.softmax_cross_entropy(z, y, 0.1),
    "focal": lambda c, z, fn, wn, y: L.focal_loss(z, y),
    "soft_margin": lambda c, z, fn, wn, y: L.soft_margin_loss(z, y),
    "amsoftmax": lambda c, z, fn, wn, y: L.amsoftmax_loss(c, y),
    "dams": lambda c, z, fn, wn, y: L.dams_loss(c, y),
    "dam_softmax": lambda c, z, fn, wn, y: L.dam_softmax_loss(c, y),
    "mam_batch": lambda c, z, fn, wn, y: L.mam_softmax_loss(z, y),
    "mam_sample": lambda c, z, fn, wn, y: L.mam_softmax_loss(z, y, statistics="sample"),
    "mam_reference_code": lambda c, z, fn, wn, y: L.mam_softmax_loss(z, y, formulation="reference_code"),
    "sce": lambda c, z, fn, wn, y: L.sce_loss(z, y),
    "sce_reference_code": lambda c, z, fn, wn, y: L.sce_loss(z, y, formulation="reference_code"),
}
for _mode in ("exact", "detached"):
    LOSS_FNS[f"lsoftmax_{_mode}"] = lambda c, z, fn, wn, y, g=_mode: L.lsoftmax_loss(c, fn, wn, y, 4, 0.0, g)
    LOSS_FNS[f"asoftmax_{_mode}"] = lambda c, z, fn, wn, y, g=_mode: L.asoftmax_loss(c, fn, y, 4, 5.0, g)
    for _overflow in ("linear", "none", "easy"):
        LOSS_FNS[f"arcface_{_overflow}_{_mode}"] = lambda c, z, fn, wn, y, g=_mode, o=_overflow: L.arcface_loss(
            c, y, 64.0, 0.5, o, g
        )


def _value_and_grads(name, c, z, fn, wn, y):
    def total(c, z, fn, wn):
        return jnp.sum(LOSS_FNS[name](c, z, fn, wn, y))

    return jax.value_and_grad(total, argnums=(0, 1, 2, 3))(c, z, fn, wn)


def _assert_finite(name, value, grads):
    assert np.isfinite(value), name
    for g in grads:
        assert np.all(np.isfinite(g)), name


@pytest.mark.parametrize("name", sorted(LOSS_FNS))
def test_finite_at_cos_plus_minus_one_and_huge_logits(name):
    d = _inputs()
    edge = np.where(d["cos"] > 0, 1.0, -1.0).astype(np.float32)  # every cosine at ±1, targets too
    huge = (1e4 * d["z"]).astype(np.float32)
    _assert_finite(name, *_value_and_grads(name, edge, huge, 1e4 * d["fn"], d["wn"], d["y"]))
    _assert_finite(name, *_value_and_grads(name, -edge, -huge, d["fn"], d["wn"], d["y"]))


@pytest.mark.parametrize("name", sorted(LOSS_FNS))
def test_bfloat16_inputs_give_float32_losses(name):
    d = _inputs()
    args = [jnp.asarray(d[k], jnp.bfloat16) for k in ("cos", "z", "fn", "wn")]
    loss = LOSS_FNS[name](*args, d["y"])
    assert loss.dtype == jnp.float32
    upcast = LOSS_FNS[name](*[a.astype(jnp.float32) for a in args], d["y"])
    np.testing.assert_allclose(loss, upcast, rtol=1e-6)
    _assert_finite(name, *_value_and_grads(name, *args, d["y"]))


def test_zero_margin_is_normalised_softmax():
    d = _inputs()
    c, y = d["cos"], d["y"]
    for s in (1.0, 30.0, 64.0):
        plain = L.softmax_cross_entropy(s * c, y)
        close = dict(rtol=1e-5, atol=1e-6 * s)  # float32 rounding of logits of size s
        np.testing.assert_allclose(L.amsoftmax_loss(c, y, s, 0.0), plain, **close)
        np.testing.assert_allclose(L.dams_loss(c, y, s, 0.0), plain, **close)
        np.testing.assert_allclose(L.dam_softmax_loss(c, y, s, 0.0), plain, **close)
        for overflow in ("linear", "none", "easy"):
            for mode in ("exact", "detached"):
                np.testing.assert_allclose(L.arcface_loss(c, y, s, 0.0, overflow, mode), plain, **close)


def test_dams_equals_amsoftmax_with_double_margin():
    d = _inputs()
    np.testing.assert_allclose(L.dams_loss(d["cos"], d["y"], 30.0, 0.2), L.amsoftmax_loss(d["cos"], d["y"], 30.0, 0.4), rtol=1e-5)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_psi_is_monotonic_and_below_cosine(m):
    theta = np.linspace(0, np.pi, 20001)
    values = np.asarray(L.psi(np.cos(theta).astype(np.float32), m), np.float64)
    assert np.all(np.diff(values) <= 1e-6) and values[0] > values[-1]
    assert np.all(values <= np.cos(theta) + 1e-5)
    np.testing.assert_allclose(values[[0, -1]], [1.0, 1.0 - 2 * m], atol=1e-5)


def test_arcface_linear_overflow_is_monotonic():
    from ferjax.losses.additive import arcface_cosine

    theta = np.linspace(0, np.pi, 20001)
    values = np.asarray(arcface_cosine(np.cos(theta).astype(np.float32), 0.5, "linear"))
    assert np.all(np.diff(values) <= 1e-6)


def test_detached_mode_keeps_value_and_plain_gradient():
    d = _inputs()
    c, y = jnp.asarray(d["cos"]), d["y"]
    exact = L.arcface_loss(c, y, 64.0, 0.5, "linear", "exact")
    detached = L.arcface_loss(c, y, 64.0, 0.5, "linear", "detached")
    np.testing.assert_allclose(detached, exact, rtol=1e-6)
    # Detached: dL/dcos = s·(softmax(z) − onehot) at the margined logits z, as if z_y = s·cos θ_y.
    from ferjax.losses.additive import arcface_cosine

    g = jax.grad(lambda c: jnp.sum(L.arcface_loss(c, y, 64.0, 0.5, "linear", "detached")))(c)
    margined = c.at[jnp.arange(B), y].set(arcface_cosine(c[jnp.arange(B), y], 0.5, "linear"))
    p = jax.nn.softmax(64.0 * margined, axis=-1)
    np.testing.assert_allclose(g, 64.0 * (p - jax.nn.one_hot(y, C)), rtol=1e-4, atol=1e-5)


def test_annealed_lambda():
    assert float(L.annealed_lambda(0)) == 1000.0
    np.testing.assert_allclose(float(L.annealed_lambda(100)), 1000.0 / 13.0, rtol=1e-6)
    assert float(L.annealed_lambda(10**6)) == 5.0


def _config(name, **overrides):
    config = ml_collections.ConfigDict({"loss": name, "losses": L.default_config()})
    for key, value in overrides.items():
        config.losses[name][key] = value
    return config


@pytest.mark.parametrize(
    "name, key, value",
    [("arcface", "grad_mode", "approx"), ("arcface", "theta_overflow", "wrap"), ("lsoftmax", "m", 0),
     ("mam_softmax", "statistics", "epoch"), ("mam_softmax", "formulation", "paper"), ("sce", "formulation", "x")],
)
def test_invalid_hyperparameters_fail_with_one_line(name, key, value):
    with pytest.raises(ConfigError, match=key):
        L.make_objective(_config(name, **{key: value}))


def _head_output(objective, x, key=0):
    head = HEADS[objective.head](num_classes=C, **objective.head_kwargs)
    params = head.init(jax.random.key(key), x)
    return head, params


@pytest.mark.parametrize("name", L.LOSSES.names())
def test_objectives_compile_once_and_train_finite(name):
    objective = L.make_objective(_config(name))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((B, 12)), jnp.float32)
    head, params = _head_output(objective, x)
    traces = []

    def loss(params, x, y, step):
        traces.append(1)
        return jnp.mean(objective.per_example(head.apply(params, x), y, step))

    step_fn = jax.jit(jax.value_and_grad(loss))
    y = np.arange(B) % C
    for step in (0, 7):  # a new step value must not retrace (λ annealing reads it as data)
        value, grads = step_fn(params, x + step, y, jnp.asarray(step, jnp.int32))
        assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert len(traces) == 1


def test_objective_heads_and_eval_logits_are_unmargined():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((B, 12)), jnp.float32)
    for name in L.LOSSES.names():
        objective = L.make_objective(_config(name))
        head, params = _head_output(objective, x)
        out = head.apply(params, x)
        assert isinstance(out, HeadOutput) and out.logits.shape == (B, C)
        if objective.head == "cosine":
            np.testing.assert_allclose(out.logits, objective.head_kwargs["scale"] * out.cosine, rtol=1e-6)


@pytest.mark.parametrize("statistics", ["batch", "sample"])
@pytest.mark.parametrize("formulation", ["thesis", "reference_code"])
def test_mam_batch_statistics_independent_of_device_count(statistics, formulation):
    assert jax.device_count() == 8
    d = _inputs()
    z = np.concatenate([d["z"], d["z"] + 2.0]).astype(np.float32)  # 32 rows: 4 per device
    y = np.concatenate([d["y"], d["y"]])
    fn = jax.jit(lambda z, y: L.mam_softmax_loss(z, y, statistics=statistics, formulation=formulation))
    one = fn(jax.device_put(z, jax.devices()[0]), jax.device_put(y, jax.devices()[0]))
    sharding = NamedSharding(make_mesh(), P("data"))
    eight = fn(jax.device_put(z, sharding), jax.device_put(y, sharding))
    assert len(eight.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(eight), np.asarray(one), rtol=1e-6)
    # And the batch statistic really is global: a shard alone gives a different loss.
    if statistics == "batch":
        assert not np.allclose(np.asarray(fn(z[:4], y[:4])), np.asarray(one)[:4])


def test_aliases_are_the_same_objective():
    assert L.LOSSES.get("cosface") is L.LOSSES.get("amsoftmax") is L.LOSSES.get("lmcl")
