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
    cos θ − m·sin m there, continuous and monotonic; ``easy``: margin only where cos θ > 0."""
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
    s: float = 64.0,
    m: float = 0.5,
    theta_overflow: str = "linear",
    grad_mode: str = "exact",
) -> jax.Array:
    """ArcFace (beyond the seeds, SPEC §4): target s·cos(θ_y + m), others s·cos θ_j."""
    check_choice("grad_mode", grad_mode, GRAD_MODES)
    c = clip_cosine(cosine)
    mask = one_hot(labels, c.shape[-1])
    c_y = target_of(c, mask)
    target = with_grad_mode(arcface_cosine(c_y, m, theta_overflow), c_y, grad_mode)
    return cross_entropy(s * replace_target(c, mask, target), mask)


losses.register_defaults("soft_margin", m=1.0)
losses.register_defaults("amsoftmax", s=30.0, m=0.35)
losses.register_defaults("arcface", s=64.0, m=0.5, theta_overflow="linear", grad_mode="exact")
losses.register_defaults("dam_softmax", s=30.0, m=0.2, lam=2.0)
losses.register_defaults("dams", s=30.0, m=0.2)


def _cosine_objective(hp, loss_fn) -> losses.Objective:
    def per_example(out, labels, step):
        del step
        return loss_fn(out.cosine, labels)

    return losses.Objective(head="cosine", per_example=per_example, head_kwargs={"scale": hp.s})


@losses.LOSSES.register("soft_margin")
def _soft_margin_objective(config) -> losses.Objective:
    hp = config.losses.soft_margin

    def per_example(out, labels, step):
        del step
        return soft_margin_loss(out.logits, labels, hp.m)

    return losses.Objective(head="linear", per_example=per_example)


@losses.LOSSES.register("amsoftmax", "cosface", "lmcl")
def _amsoftmax_objective(config) -> losses.Objective:
    hp = config.losses.amsoftmax  # the aliases share these hyperparameters
    return _cosine_objective(hp, lambda c, y: amsoftmax_loss(c, y, hp.s, hp.m))


@losses.LOSSES.register("arcface")
def _arcface_objective(config) -> losses.Objective:
    hp = config.losses.arcface
    check_choice("theta_overflow", hp.theta_overflow, THETA_OVERFLOW)
    check_choice("grad_mode", hp.grad_mode, GRAD_MODES)
    return _cosine_objective(hp, lambda c, y: arcface_loss(c, y, hp.s, hp.m, hp.theta_overflow, hp.grad_mode))


@losses.LOSSES.register("dam_softmax")
def _dam_softmax_objective(config) -> losses.Objective:
    hp = config.losses.dam_softmax
    return _cosine_objective(hp, lambda c, y: dam_softmax_loss(c, y, hp.s, hp.m, hp.lam))


@losses.LOSSES.register("dams")
def _dams_objective(config) -> losses.Objective:
    hp = config.losses.dams
    return _cosine_objective(hp, lambda c, y: dams_loss(c, y, hp.s, hp.m))
