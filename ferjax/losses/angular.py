"""Multiplicative angular margins: L-Softmax (Liu 2016) and A-Softmax / SphereFace.

Seed 001 eq. 8–11 and SPEC §4: the target logit ‖W_y‖‖x‖cos θ_y becomes ‖W_y‖‖x‖ψ(θ_y) with
the monotonic ψ(θ) = (−1)^k cos(mθ) − 2k, k = ⌊mθ/π⌋, for an integer margin m. A-Softmax
additionally fixes ‖W_j‖ = 1 and b = 0 (eq. 9–10). cos(mθ) is the Chebyshev polynomial
T_m(cos θ) and k is found by comparing cos θ with cos(jπ/m), so no arccos is needed and the
gradient is finite at cos θ = ±1 (its one-sided limit). Training is eased in with λ annealing:
the target logit is ‖W_y‖‖x‖(λ cos θ_y + ψ(θ_y)) / (1 + λ),
λ = max(λ_min, base·(1 + γ·step)^(−power)).
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.errors import ConfigError
from ferjax.losses.common import (
    GRAD_MODES,
    as_f32,
    check_choice,
    clip_cosine,
    cross_entropy,
    one_hot,
    replace_target,
    target_of,
    with_grad_mode,
)


def _check_margin(m) -> int:
    if int(m) != m or m < 1:
        raise ConfigError(f"loss hyperparameter m={m!r}: the angular margin must be an integer ≥ 1")
    return int(m)


def psi(cosine: jax.Array, m: int) -> jax.Array:
    """ψ(θ) = (−1)^k cos(mθ) − 2k, k = ⌊mθ/π⌋, as a function of cos θ (monotonic decreasing in θ).

    k counts the thresholds cos(jπ/m), j = 1 … m − 1, that cos θ is at or below, so θ = π
    (cos θ = −1, where ⌊mθ/π⌋ = m) takes the k = m − 1 piece: the same value, 1 − 2m, and the
    gradient of the limit from inside [0, π) (counting j = m gave it the wrong sign).
    """
    m = _check_margin(m)
    c = clip_cosine(cosine)
    t_prev, t_m = jnp.ones_like(c), c  # Chebyshev T_0, T_1
    for _ in range(m - 1):
        t_prev, t_m = t_m, 2.0 * c * t_m - t_prev
    k = sum((c <= math.cos(j * math.pi / m)).astype(jnp.float32) for j in range(1, m))
    sign = 1.0 - 2.0 * jnp.mod(k, 2.0)
    return sign * t_m - 2.0 * k


def annealed_lambda(step, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0):
    """λ = max(λ_min, base·(1 + γ·step)^(−power)) (SphereFace schedule, SPEC §4)."""
    step = as_f32(step)
    return jnp.maximum(lambda_min, base * jnp.power(1.0 + gamma * step, -power))


def lsoftmax_loss(
    cosine: jax.Array,
    feature_norm: jax.Array,
    weight_norm: Optional[jax.Array],
    labels: jax.Array,
    m: int = 4,
    lam=0.0,
    grad_mode: str = "exact",
) -> jax.Array:
    """L-Softmax per-example loss; logits ‖W_j‖‖x‖cos θ_j, target ‖W_y‖‖x‖(λ cos θ_y + ψ(θ_y))/(1+λ).

    ``weight_norm=None`` means ‖W_j‖ = 1 (A-Softmax). ``lam`` = 0 is the pure margin.
    """
    check_choice("grad_mode", grad_mode, GRAD_MODES)
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    scale = as_f32(feature_norm)[:, None]
    if weight_norm is not None:
        scale = scale * as_f32(weight_norm)[None, :]
    logits = scale * c
    c_y = target_of(c, mask)
    psi_lam = (lam * c_y + psi(c_y, m)) / (1.0 + lam)
    target = target_of(jnp.broadcast_to(scale, c.shape), mask) * with_grad_mode(psi_lam, c_y, grad_mode)
    return cross_entropy(replace_target(logits, mask, target), mask)


def asoftmax_loss(
    cosine: jax.Array, feature_norm: jax.Array, labels: jax.Array, m: int = 4, lam=0.0, grad_mode: str = "exact"
) -> jax.Array:
    """A-Softmax (SphereFace) per-example loss: L-Softmax with ‖W_j‖ = 1, b = 0 (eq. 9–10)."""
    return lsoftmax_loss(cosine, feature_norm, None, labels, m, lam, grad_mode)


def _annealed_objective(config, *, name: str, normalize_weights: bool) -> losses.Objective:
    """L-/A-Softmax on the ``angular`` head with λ annealed over the training step."""
    hp = config.losses[name]

    def per_example(out, labels, step):
        lam = annealed_lambda(step, hp.base, hp.gamma, hp.power, hp.lambda_min)
        weight_norm = None if normalize_weights else out.weight_norm
        return lsoftmax_loss(out.cosine, out.feature_norm, weight_norm, labels, hp.m, lam, hp.grad_mode)

    head_kwargs = {"normalize_weights": normalize_weights}
    return losses.Objective(head="angular", per_example=per_example, head_kwargs=head_kwargs)


# config.losses.<name>: lsoftmax_loss's margin and grad_mode, annealed_lambda's schedule.
_ANNEALED = {
    **{k: v for k, v in losses.keyword_defaults(lsoftmax_loss).items() if k != "lam"},
    **losses.keyword_defaults(annealed_lambda),
}
for _name, _normalize in (("lsoftmax", False), ("asoftmax", True)):
    losses.LOSSES.register(
        _name, functools.partial(_annealed_objective, name=_name, normalize_weights=_normalize), **_ANNEALED
    )
