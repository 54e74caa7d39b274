"""Every loss against an independent float64 NumPy reference (SPEC §4), at rtol 1e-5.

The references use arccos/cos(mθ) and explicit softmax sums, not the Chebyshev and
masked-logsumexp forms of the JAX code, so they check the formulas, not a transcription.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

import ferjax.losses as L

B, C = 32, 7
RTOL = 1e-5


def _ce(z, y):
    return logsumexp(z, axis=-1) - z[np.arange(len(y)), y]


def _with_target(z, y, target):
    z = z.copy()
    z[np.arange(len(y)), y] = target
    return z


def _psi(c, m):
    theta = np.arccos(np.clip(c, -1, 1))
    k = np.floor(m * theta / np.pi)
    return (-1.0) ** k * np.cos(m * theta) - 2 * k


def _atol(scale):
    # float32 rounding of logits of size `scale` (~scale·6e-8) bounds the absolute error.
    return 2e-6 * max(1.0, scale)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    cos = rng.uniform(-1, 1, (B, C)).astype(np.float32)
    logits = (3 * rng.standard_normal((B, C))).astype(np.float32)
    labels = rng.integers(0, C, B)
    feature_norm = rng.uniform(0.5, 3, B).astype(np.float32)
    weight_norm = rng.uniform(0.5, 2, C).astype(np.float32)
    return cos, logits, labels, feature_norm, weight_norm


def _check(actual, expected, scale=1.0):
    actual = np.asarray(actual)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=_atol(scale))


def test_softmax_label_smoothing(data):
    _, z, y, _, _ = data
    z64, eps = z.astype(np.float64), 0.1
    t = np.full((B, C), eps / C)
    t[np.arange(B), y] += 1 - eps
    expected = -(t * (z64 - logsumexp(z64, axis=-1, keepdims=True))).sum(-1)
    _check(L.softmax_cross_entropy(z, y, eps), expected)


def test_focal(data):
    _, z, y, _, _ = data
    z64 = z.astype(np.float64)
    p_y = np.exp(-_ce(z64, y))
    _check(L.focal_loss(z, y, 2.0), -((1 - p_y) ** 2) * np.log(p_y))


def test_soft_margin(data):
    _, z, y, _, _ = data
    z64 = z.astype(np.float64)
    _check(L.soft_margin_loss(z, y, 0.7), _ce(_with_target(z64, y, z64[np.arange(B), y] - 0.7), y))


@pytest.mark.parametrize("lam", [0.0, 5.0])
def test_lsoftmax(data, lam):
    c, _, y, fn, wn = data
    c64, scale = c.astype(np.float64), np.outer(fn, wn).astype(np.float64)
    z = scale * c64
    c_y = c64[np.arange(B), y]
    target = scale[np.arange(B), y] * (lam * c_y + _psi(c_y, 4)) / (1 + lam)
    _check(L.lsoftmax_loss(c, fn, wn, y, 4, lam), _ce(_with_target(z, y, target), y), scale=10)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_asoftmax(data, m):
    c, _, y, fn, _ = data
    c64, f64 = c.astype(np.float64), fn.astype(np.float64)
    target = f64 * _psi(c64[np.arange(B), y], m)
    _check(L.asoftmax_loss(c, fn, y, m), _ce(_with_target(f64[:, None] * c64, y, target), y), scale=3)


def test_amsoftmax_and_aliases(data):
    c, _, y, _, _ = data
    c64 = c.astype(np.float64)
    expected = _ce(_with_target(30 * c64, y, 30 * (c64[np.arange(B), y] - 0.35)), y)
    for fn in (L.amsoftmax_loss, L.cosface_loss, L.lmcl_loss):
        _check(fn(c, y, 30.0, 0.35), expected, scale=30)


def test_dams(data):
    c, _, y, _, _ = data
    c64 = c.astype(np.float64)
    z = _with_target(30 * (c64 + 0.2), y, 30 * (c64[np.arange(B), y] - 0.2))
    _check(L.dams_loss(c, y, 30.0, 0.2), _ce(z, y), scale=30)


def test_dam_softmax(data):
    c, _, y, _, _ = data
    c64 = c.astype(np.float64)
    c_y = c64[np.arange(B), y]
    margin = (0.2 / 2.0) * np.exp(1 - c_y)
    _check(L.dam_softmax_loss(c, y, 30.0, 0.2, 2.0), _ce(_with_target(30 * c64, y, 30 * (c_y - margin)), y), scale=30)


@pytest.mark.parametrize("overflow", ["linear", "none", "easy"])
def test_arcface(data, overflow):
    c, _, y, _, _ = data
    s, m = 64.0, 0.5
    c64 = c.astype(np.float64)
    c_y = c64[np.arange(B), y]
    theta = np.arccos(c_y)
    target = np.cos(theta + m)
    if overflow == "linear":
        target = np.where(theta + m < np.pi, target, c_y - m * np.sin(m))
    elif overflow == "easy":
        target = np.where(c_y > 0, target, c_y)
    _check(L.arcface_loss(c, y, s, m, overflow), _ce(_with_target(s * c64, y, s * target), y), scale=s)


@pytest.mark.parametrize("statistics", ["batch", "sample"])
def test_mam_softmax_thesis(data, statistics):
    _, z, y, _, _ = data
    z64 = z.astype(np.float64)
    if statistics == "batch":
        z_max, z_mean = z64.max(), z64.mean()
    else:
        z_max, z_mean = z64.max(-1), z64.mean(-1)
    m_u = z_mean + np.clip(z_max + 0.2, 0, 4)
    expected = _ce(_with_target(z64, y, z64[np.arange(B), y] - m_u), y)
    _check(L.mam_softmax_loss(z, y, 0.2, 4.0, statistics), expected, scale=10)


@pytest.mark.parametrize("statistics", ["batch", "sample"])
def test_mam_softmax_reference_code(data, statistics):
    _, z, y, _, _ = data
    z = z + np.float32(2.0)  # the formulation is only defined where max(z) + ε > 1
    z64 = z.astype(np.float64)
    m = z64.max() + 0.2 if statistics == "batch" else z64.max(-1, keepdims=True) + 0.2
    assert np.all(m > 1)
    a = np.log10(m)
    e = np.exp(z64)
    p = a * e / (e.sum(-1, keepdims=True) - e + a * e + 0.001)
    p = p / p.sum(-1, keepdims=True)
    expected = -np.log(p[np.arange(B), y])
    _check(L.mam_softmax_loss(z, y, 0.2, 4.0, statistics, "reference_code"), expected, scale=10)


def test_sce_thesis(data):
    _, z, y, _, _ = data
    z64 = z.astype(np.float64)
    p = np.exp(z64 - logsumexp(z64, axis=-1, keepdims=True))
    t = np.eye(C)[y]
    weight = np.linalg.norm((1 - t) * p, axis=-1)
    alpha = ((t - t * p) ** 2).mean(-1)
    p_y = p[np.arange(B), y]
    expected = 0.5 * -np.log(p_y) + 0.5 * -alpha * weight * np.log10(p_y)
    _check(L.sce_loss(z, y, 0.5, 0.5), expected)


def test_sce_reference_code(data):
    _, z, y, _, _ = data
    p_y = np.exp(-_ce(z.astype(np.float64), y))
    expected = 0.5 * -np.log(p_y) + 0.5 * 4 * (1 - p_y) ** 2 * -np.log10(p_y)
    _check(L.sce_loss(z, y, 0.5, 0.5, "reference_code", 4.0, 2.0), expected)


# --- Sweep: 2-D unit embeddings at 0–179° through the real heads and registered objectives. ---

_W_ANGLES = np.deg2rad([0.0, 100.0, 230.0])
_W_NORMS = np.array([1.0, 2.0, 0.5])
_X_NORM = 2.5


def _sweep_reference(name, hp, z_lin, cos, y, step):
    n = np.arange(len(y))
    c_y = cos[n, y]
    if name == "softmax":
        return _ce(z_lin, y)
    if name == "soft_margin":
        return _ce(_with_target(z_lin, y, z_lin[n, y] - hp.m), y)
    if name == "focal":
        p_y = np.exp(-_ce(z_lin, y))
        return -((1 - p_y) ** hp.gamma) * np.log(p_y)
    if name == "mam_softmax":
        return _ce(_with_target(z_lin, y, z_lin[n, y] - z_lin.mean() - np.clip(z_lin.max() + hp.epsilon, 0, hp.clip_max)), y)
    if name == "sce":
        p = np.exp(z_lin - logsumexp(z_lin, axis=-1, keepdims=True))
        t = np.eye(p.shape[1])[y]
        p_y = p[n, y]
        alpha_weight = ((1 - p_y) ** 2 / p.shape[1]) * np.linalg.norm((1 - t) * p, axis=-1)
        return hp.a * -np.log(p_y) - hp.b * alpha_weight * np.log10(p_y)
    if name in ("lsoftmax", "asoftmax"):
        lam = max(hp.lambda_min, hp.base * (1 + hp.gamma * step) ** -hp.power)
        scale = _X_NORM * (_W_NORMS[None, :] if name == "lsoftmax" else np.ones((1, 3)))
        scale = np.broadcast_to(scale, cos.shape)
        target = scale[n, y] * (lam * c_y + _psi(c_y, hp.m)) / (1 + lam)
        return _ce(_with_target(scale * cos, y, target), y)
    if name in ("amsoftmax", "cosface", "lmcl"):
        return _ce(_with_target(hp.s * cos, y, hp.s * (c_y - hp.m)), y)
    if name == "dams":
        return _ce(_with_target(hp.s * (cos + hp.m), y, hp.s * (c_y - hp.m)), y)
    if name == "dam_softmax":
        return _ce(_with_target(hp.s * cos, y, hp.s * (c_y - hp.m / hp.lam * np.exp(1 - c_y))), y)
    if name == "arcface":
        theta = np.arccos(c_y)
        target = np.where(theta + hp.m < np.pi, np.cos(theta + hp.m), c_y - hp.m * np.sin(hp.m))
        return _ce(_with_target(hp.s * cos, y, hp.s * target), y)
    raise AssertionError(f"no reference for {name}")


@pytest.mark.parametrize("name", L.LOSSES.names())
@pytest.mark.parametrize("step", [0, 100_000])
def test_angle_sweep_through_heads(name, step):
    import jax
    import ml_collections

    from ferjax.heads import HEADS

    config = ml_collections.ConfigDict({"loss": name, "losses": L.LOSSES.default_config()})
    objective = L.make_objective(config)
    angles = np.deg2rad(np.arange(180.0))
    x = (_X_NORM * np.stack([np.cos(angles), np.sin(angles)], -1)).astype(np.float32)
    y = np.arange(180) % 3
    kernel = (_W_NORMS * np.stack([np.cos(_W_ANGLES), np.sin(_W_ANGLES)])).astype(np.float32)
    head = HEADS[objective.head](num_classes=3, **objective.head_kwargs)
    layer = {"dense": {"kernel": kernel, "bias": np.zeros(3, np.float32)}} if objective.head == "linear" else {"kernel": kernel}
    out = head.apply({"params": layer}, x)
    actual = jax.jit(objective.per_example)(out, y, step)

    cos = np.cos(angles[:, None] - _W_ANGLES[None, :])
    z_lin = _X_NORM * _W_NORMS[None, :] * cos
    hp = config.losses["amsoftmax" if name in ("cosface", "lmcl") else name]
    expected = _sweep_reference(name, hp, z_lin, cos, y, step)
    # Head cosines carry float32 rounding (~1e-7 absolute), amplified by the logit scale.
    scale = hp.s if "s" in hp else _X_NORM * _W_NORMS.max()
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=6e-7 * scale)
