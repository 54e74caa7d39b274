"""Numerics shared by the margin losses (SPEC §4 "Numerics").

Every loss here is cross-entropy on modified logits z (seed 001 eq. 6): the target logit z_y
is replaced by a margined value, the others are left as they are (or shifted, DAMS). All
math is float32 whatever the input dtype; cosines are clipped to [−1, 1] with the one-sided
gradient at the bounds; square roots and fractional powers only see strictly positive
inputs (double ``where``) so no NaN gradient leaks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ferjax.errors import ConfigError
from ferjax.heads import clip_unit

GRAD_MODES = ("exact", "detached")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Fail with a one-line ConfigError naming the hyperparameter when ``value`` is not allowed."""
    if value not in choices:
        raise ConfigError(f"loss hyperparameter {name}={value!r}; valid: {', '.join(choices)}")
    return value


def as_f32(x: jax.Array) -> jax.Array:
    return jnp.asarray(x).astype(jnp.float32)


def clip_cosine(cosine: jax.Array) -> jax.Array:
    """float32 cosines clipped to [−1, 1], derivative 1 at the bounds (:func:`ferjax.heads.clip_unit`)."""
    return clip_unit(as_f32(cosine))


def one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
    """(B, C) float32 target mask."""
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)


def target_of(values: jax.Array, mask: jax.Array) -> jax.Array:
    """(B,) value at the target class (a masked sum: cheaper to differentiate than a gather)."""
    return jnp.sum(values * mask, axis=-1)


def cross_entropy(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-example −log softmax(z)_y = logsumexp(z) − z_y; stable for huge logits."""
    return jax.nn.logsumexp(logits, axis=-1) - target_of(logits, mask)


def replace_target(logits: jax.Array, mask: jax.Array, target_logit: jax.Array) -> jax.Array:
    """z with z_y replaced by ``target_logit`` (B,)."""
    return jnp.where(mask > 0, target_logit[:, None], logits)


def sine_from_cosine(cosine: jax.Array) -> jax.Array:
    """sin θ = √((1−c)(1+c)) for θ ∈ [0, π]; 0 with a zero (finite) gradient at c = ±1."""
    sin_sq = (1.0 - cosine) * (1.0 + cosine)
    positive = sin_sq > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sin_sq, 1.0)), 0.0)


def focal_modulator(one_minus_p: jax.Array, gamma: float) -> jax.Array:
    """(1 − p)^γ for 1 − p ≥ 0 and any γ ≥ 0, as exp(γ log(1 − p)) where 1 − p > 0. At p = 1 it
    is 0^γ (0, or 1 when γ = 0) with a zero gradient: ``jnp.power`` would give an infinite
    derivative there for γ < 1 and a NaN loss gradient (0·∞); the focal terms' true limit is 0."""
    positive = one_minus_p > 0.0
    safe_log = jnp.log(jnp.where(positive, one_minus_p, 1.0))
    return jnp.where(positive, jnp.exp(gamma * safe_log), float(gamma == 0.0))


def with_grad_mode(margined: jax.Array, plain: jax.Array, grad_mode: str) -> jax.Array:
    """``exact``: differentiate the margined value; ``detached``: value of ``margined`` with the
    gradient of ``plain`` (z = plain + stop_gradient(margined − plain), as insightface and
    SphereFace-R do)."""
    if grad_mode == "exact":
        return margined
    return plain + jax.lax.stop_gradient(margined - plain)
