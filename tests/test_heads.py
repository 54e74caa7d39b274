"""Heads (SPEC §4): linear Wᵀx + b, normalised cosine s·x̂·Ŵ_j, bias-free angular ‖W_j‖‖x‖cos θ_j."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.heads import HEADS, HeadOutput

B, D, C = 8, 5, 3


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((B, D)).astype(np.float32)


def _init(name, x, **kwargs):
    head = HEADS[name](num_classes=C, **kwargs)
    return head, head.init(jax.random.key(0), x)


def test_linear_head_is_affine(x):
    head, params = _init("linear", x)
    out = head.apply(params, x)
    dense = params["params"]["dense"]
    np.testing.assert_allclose(out.logits, x @ dense["kernel"] + dense["bias"], rtol=1e-5, atol=1e-6)
    assert out.cosine is None


def test_cosine_head(x):
    head, params = _init("cosine", x, scale=30.0)
    out = head.apply(params, x)
    w = np.asarray(params["params"]["kernel"], np.float64)
    x64 = x.astype(np.float64)
    cos = (x64 / np.linalg.norm(x64, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
    np.testing.assert_allclose(out.cosine, cos, atol=1e-6)
    np.testing.assert_allclose(out.logits, 30.0 * out.cosine, rtol=1e-6)
    np.testing.assert_allclose(out.feature_norm, np.linalg.norm(x64, axis=1), rtol=1e-6)
    np.testing.assert_allclose(out.weight_norm, np.linalg.norm(w, axis=0), rtol=1e-6)


@pytest.mark.parametrize("normalize_weights", [False, True])
def test_angular_head(x, normalize_weights):
    head, params = _init("angular", x, normalize_weights=normalize_weights)
    out = head.apply(params, x)
    w = np.asarray(params["params"]["kernel"], np.float64)
    if normalize_weights:
        w = w / np.linalg.norm(w, axis=0)
    np.testing.assert_allclose(out.logits, x.astype(np.float64) @ w, rtol=1e-5, atol=1e-6)
    assert "bias" not in params["params"]


@pytest.mark.parametrize("name, kwargs", [("linear", {}), ("cosine", {"scale": 30.0}), ("angular", {})])
def test_bfloat16_features_give_float32_outputs(x, name, kwargs):
    head, params = _init(name, x, **kwargs)
    out = head.apply(params, jnp.asarray(x, jnp.bfloat16))
    assert isinstance(out, HeadOutput)
    for field in out:
        assert field is None or field.dtype == jnp.float32


@pytest.mark.parametrize("name", ["cosine", "angular"])
def test_gradients_finite_when_features_align_with_a_class(x, name):
    head, params = _init(name, x)
    aligned = jnp.asarray(np.repeat(np.asarray(params["params"]["kernel"]).T[:1] * 3.0, B, axis=0))
    aligned = aligned.at[0].set(0.0)  # and a zero feature

    def total(params, feats):
        out = head.apply(params, feats)
        return jnp.sum(out.logits) + jnp.sum(out.cosine)

    grads = jax.grad(total, argnums=(0, 1))(params, aligned)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(jnp.max(head.apply(params, aligned).cosine)) <= 1.0
