"""Focal loss −(1 − p_y)^γ log p_y (Lin et al., seed 001 eq. 19 with α = 1; SPEC §4: γ = 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.losses.common import as_f32, one_hot, target_of


def focal_loss(logits: jax.Array, labels: jax.Array, gamma: float = 2.0) -> jax.Array:
    """Per-example focal loss of integer ``labels`` under ``logits`` (float32 math)."""
    logits = as_f32(logits)
    log_p_y = target_of(jax.nn.log_softmax(logits, axis=-1), one_hot(labels, logits.shape[-1]))
    one_minus_p = -jnp.expm1(log_p_y)  # 1 − p_y without cancellation near p_y = 1
    # (1 − p)^γ as exp(γ log(1 − p)) only where 1 − p > 0 (finite gradients for any γ ≥ 0);
    # at p_y = 1 it is 0^γ: 0, or 1 when γ = 0.
    positive = one_minus_p > 0.0
    safe_log = jnp.log(jnp.where(positive, one_minus_p, 1.0))
    modulator = jnp.where(positive, jnp.exp(gamma * safe_log), float(gamma == 0.0))
    return -modulator * log_p_y


losses.register_defaults("focal", gamma=2.0)


@losses.LOSSES.register("focal")
def _focal_objective(config) -> losses.Objective:
    hp = config.losses.focal

    def per_example(out, labels, step):
        del step
        return focal_loss(out.logits, labels, hp.gamma)

    return losses.Objective(head="linear", per_example=per_example)
