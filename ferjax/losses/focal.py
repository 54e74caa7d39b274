"""Focal loss −(1 − p_y)^γ log p_y (Lin et al., seed 001 eq. 19 with α = 1; SPEC §4: γ = 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.losses.common import as_f32, focal_modulator, one_hot, target_of


def focal_loss(logits: jax.Array, labels: jax.Array, gamma: float = 2.0) -> jax.Array:
    """Per-example focal loss of integer ``labels`` under ``logits`` (float32 math)."""
    logits = as_f32(logits)
    log_p_y = target_of(jax.nn.log_softmax(logits, axis=-1), one_hot(labels, logits.shape[-1]))
    one_minus_p = -jnp.expm1(log_p_y)  # 1 − p_y without cancellation near p_y = 1
    return -focal_modulator(one_minus_p, gamma) * log_p_y


losses.register("focal", focal_loss, head="linear")
