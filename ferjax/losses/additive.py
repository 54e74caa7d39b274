"""Additive margins: soft-margin softmax, AM-Softmax/CosFace/LMCL, ArcFace, DAM-Softmax, DAMS.

Seed 001 eq. 12–16 and SPEC §4. All but soft-margin work on the cosines of a normalised
cosine head (x̂·Ŵ_j, b = 0) scaled by s; evaluation uses the un-margined s·cos θ_j.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.losses.common import (
    GRAD_MODES,
    as_f32,
    check_choice,
    clip_cosine,
    cross_entropy,
    one_hot,
    replace_target,
    sine_from_cosine,
    target_of,
    with_grad_mode,
)

THETA_OVERFLOW = ("linear", "none", "easy")


def soft_margin_loss(logits: jax.Array, labels: jax.Array, m: float = 1.0) -> jax.Array:
    """Soft-margin softmax (eq. 12): target logit W_yᵀx − m, m a real ≥ 0."""
    logits = as_f32(logits)
    mask = one_hot(labels, logits.shape[-1])
    return cross_entropy(logits - m * mask, mask)


def amsoftmax_loss(cosine: jax.Array, labels: jax.Array, s: float = 30.0, m: float = 0.35) -> jax.Array:
    """AM-Softmax / CosFace / LMCL (eq. 13–14): target s(cos θ_y − m), others s·cos θ_j."""
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    return cross_entropy(s * (c - m * mask), mask)


def dams_loss(cosine: jax.Array, labels: jax.Array, s: float = 30.0, m: float = 0.2) -> jax.Array:
    """DAMS (eq. 15–16): target s(cos θ_y − m), others s(cos θ_j + m)."""
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    return cross_entropy(s * (c + m * (1.0 - 2.0 * mask)), mask)


def dam_softmax_loss(
    cosine: jax.Array, labels: jax.Array, s: float = 30.0, m: float = 0.2, lam: float = 2.0
) -> jax.Array:
    """DAM-Softmax (Zhou 2020, seed 001 "dynamic margin"): target s(cos θ_y − m_i) with the
    per-sample margin m_i = (m/λ)·e^{1 − cos θ_y}, held constant in the gradient (SPEC §4)."""
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    margin = jax.lax.stop_gradient((m / lam) * jnp.exp(1.0 - target_of(c, mask)))
    return cross_entropy(s * (c - margin[:, None] * mask), mask)


def arcface_cosine(cosine: jax.Array, m: float, theta_overflow: str = "linear") -> jax.Array:
    """cos(θ + m) = cos θ cos m − sin θ sin m, with the θ + m > π region handled by ``theta_overflow``:
    ``none``: plain cos(θ + m) (not monotonic past θ = π − m); ``linear`` (insightface):
    cos θ − m·sin m there, monotonic but not continuous (it drops by cos m + m·sin m − 1 at
    θ = π − m); ``easy``: margin only where cos θ > 0 (it rises by sin m at θ = π/2).

    At cos θ = ±1 the derivative of sin θ (infinite in the limit) is taken as 0, so the
    gradient stays finite: d/dc cos(θ + m) = cos m there (docs/losses.md "Numerics")."""
    check_choice("theta_overflow", theta_overflow, THETA_OVERFLOW)
    c = clip_cosine(cosine)
    shifted = c * math.cos(m) - sine_from_cosine(c) * math.sin(m)
    if theta_overflow == "linear":
        return jnp.where(c > math.cos(math.pi - m), shifted, c - m * math.sin(m))
    if theta_overflow == "easy":
        return jnp.where(c > 0.0, shifted, c)
    return shifted


def arcface_loss(
    cosine: jax.Array,
    labels: jax.Array,
    s: float = 30.0,
    m: float = 0.3,
    theta_overflow: str = "linear",
    grad_mode: str = "exact",
) -> jax.Array:
    """ArcFace (beyond the seeds, SPEC §4): target s·cos(θ_y + m), others s·cos θ_j.

    Defaults s = 30, m = 0.3, not SPEC §4's s = 64, m = 0.5 (sized for thousands of face
    identities): with 7 classes those trained unstably (demo, 5 seeds: 73 ± 24%, min 48.5%;
    docs/losses.md "arcface")."""
    check_choice("grad_mode", grad_mode, GRAD_MODES)
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    c_y = target_of(c, mask)
    target = with_grad_mode(arcface_cosine(c_y, m, theta_overflow), c_y, grad_mode)
    return cross_entropy(s * replace_target(c, mask, target), mask)


losses.register("soft_margin", soft_margin_loss, head="linear")
losses.register("amsoftmax", amsoftmax_loss, head="cosine", aliases=("cosface", "lmcl"))
losses.register("arcface", arcface_loss, head="cosine")
losses.register("dam_softmax", dam_softmax_loss, head="cosine")
losses.register("dams", dams_loss, head="cosine")
