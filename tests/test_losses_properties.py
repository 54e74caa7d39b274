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
    config = ml_collections.ConfigDict({"loss": name, "losses": L.LOSSES.default_config()})
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


# Gradients at the cosine bounds equal their one-sided limits (issue 10, D1): ψ's k at cos θ = −1
# and the clip's half gradient at ±1. Excluded: ArcFace at +1, where cos(θ + m) moves like
# √(1 − cos θ) (exact mode: an infinite one-sided derivative, kept finite by choice, see
# docs/losses.md "Numerics"; detached: no nearby point is close), and "none"/exact at −1 (same).
_COSINE_LOSSES = sorted(n for n in LOSS_FNS if n.startswith(("amsoftmax", "dam", "lsoftmax", "asoftmax", "arcface")))


@pytest.mark.parametrize("bound", [-1.0, 1.0])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_psi_gradient_at_the_bounds_is_the_one_sided_limit(m, bound):
    grad = jax.grad(lambda c: L.psi(c, m))
    np.testing.assert_allclose(grad(bound), grad(bound * (1 - 1e-5)), rtol=1e-3)


@pytest.mark.parametrize("bound", [-1.0, 1.0])
@pytest.mark.parametrize("name", _COSINE_LOSSES)
def test_cosine_loss_gradients_at_the_bounds_are_the_one_sided_limits(name, bound):
    if name.startswith("arcface") and (bound > 0 or name.endswith("none_exact")):
        pytest.skip("cos(θ + m) moves like √(1 − cos² θ) at this bound")
    d = _inputs()
    rows = np.arange(B)

    def target_gradient(c_y):
        c = d["cos"].copy()
        c[rows, d["y"]] = c_y
        grads = _value_and_grads(name, c, d["z"], d["fn"], d["wn"], d["y"])[1]
        return np.asarray(grads[0])[rows, d["y"]]

    np.testing.assert_allclose(target_gradient(bound), target_gradient(bound * (1 - 1e-5)), rtol=2e-3, atol=1e-6)


# At p_y = 1 (a logit margin of 40), (1 − p_y)^γ with γ < 1 has an infinite derivative; the
# focal terms must still give the limit gradient 0, not NaN (issue 10, D3).
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(
    "loss",
    [
        lambda z, y, gamma: L.sce_loss(z, y, formulation="reference_code", focal_gamma=gamma),
        lambda z, y, gamma: L.focal_loss(z, y, gamma),
    ],
    ids=["sce_reference_code", "focal"],
)
def test_focal_terms_have_finite_gradients_at_certainty(loss, gamma):
    z = jnp.array([[40.0, 0.0, -3.0], [0.0, 1.0, 2.0]])
    y = jnp.array([0, 1])
    grads = jax.grad(lambda z: jnp.sum(loss(z, y, gamma)))(z)
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads[0], 0.0, atol=1e-12)


def test_mam_thesis_margin_depends_on_a_common_logit_shift():
    """The audit's finding (docs/losses.md): M_U = mean(z) + M_c moves with the logits, so a
    common shift changes the loss although its gradient has no component along the shift."""
    d = _inputs()
    z, y = d["z"] / 3, d["y"]
    losses = [float(jnp.mean(L.mam_softmax_loss(z + shift, y))) for shift in (-20.0, 0.0, 20.0)]
    assert losses[0] < 1e-3 < losses[1] < losses[2]
    grads = jax.grad(lambda z: jnp.sum(L.mam_softmax_loss(z, y)))(z)
    np.testing.assert_allclose(jnp.sum(grads, axis=-1), 0.0, atol=1e-5)


@pytest.mark.parametrize("statistics", ["batch", "sample"])
def test_mam_centred_statistics_make_the_loss_shift_invariant(statistics):
    d = _inputs()
    z, y = d["z"], d["y"]
    shifts = np.linspace(-20.0, 20.0, B, dtype=np.float32)[:, None]  # a different shift per row
    kw = dict(statistics=statistics, centred=True)
    close = dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(L.mam_softmax_loss(z + shifts, y, **kw), L.mam_softmax_loss(z, y, **kw), **close)
    config = _config("mam_softmax")
    assert config.losses.mam_softmax.centred is False  # the thesis reading stays the default
    config.losses.mam_softmax.centred = True
    out = HeadOutput(logits=jnp.asarray(z + shifts))
    objective = L.make_objective(config)
    np.testing.assert_allclose(objective.per_example(out, y, 0), L.mam_softmax_loss(z, y, centred=True), **close)


def test_sce_proposed_term_is_at_most_one_over_c_ln10_of_ce():
    """The audit's finding (docs/losses.md): with a = b = 0.5, L_SCE lies in [0.5, 0.531]·CE for
    7 classes, since L_proposed ≤ (1 − p_y)³/(C ln 10)·CE."""
    scales = np.repeat([0.3, 1.0, 3.0, 10.0], 1024)[:, None]
    z = (np.random.default_rng(3).standard_normal((4096, C)) * scales).astype(np.float32)
    y = np.arange(4096) % C
    ce = np.asarray(L.softmax_cross_entropy(z, y))
    confident = ce < 1e-3  # float32 ratios of two tiny losses are noise
    ratio = np.asarray(L.sce_loss(z, y))[~confident] / ce[~confident]
    assert np.all(ratio >= 0.5 - 1e-6) and np.all(ratio <= 0.5 * (1 + 1 / (C * np.log(10))) + 1e-6)
    assert ratio.max() > 0.52  # the bound is nearly reached by confidently wrong rows
