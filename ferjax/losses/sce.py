"""The thesis's SCE loss: cross-entropy plus a modified focal term (seed 001 eq. 17–22 and its
"SCE Loss Algorithm"; SPEC §4).

With p = softmax(z) and one-hot t:  weight = ‖(1 − t) ⊙ p‖₂ (eq. 21, the norm of the
non-target probabilities), α = mean_c (t − t ⊙ p)² = (1 − p_y)²/C (eq. 20),
L_proposed = −α·weight·log10 p_y (eq. 22), L_SCE = a·CE + b·L_proposed (eq. 17).

``formulation="reference_code"``: the author's code uses the focal term instead,
L = a·CE + b·focal_alpha·(1 − p_y)^focal_gamma·(−log10 p_y).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.losses.common import as_f32, check_choice, focal_modulator, one_hot, target_of

FORMULATIONS = ("thesis", "reference_code")


def sce_loss(
    logits: jax.Array,
    labels: jax.Array,
    a: float = 0.5,
    b: float = 0.5,
    formulation: str = "thesis",
    focal_alpha: float = 4.0,
    focal_gamma: float = 2.0,
) -> jax.Array:
    """Per-example SCE loss of integer ``labels`` under ``logits`` (float32 math)."""
    check_choice("formulation", formulation, FORMULATIONS)
    logits = as_f32(logits)
    num_classes = logits.shape[-1]
    mask = one_hot(labels, num_classes)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_p_y = target_of(log_p, mask)
    one_minus_p_y = jnp.maximum(-jnp.expm1(log_p_y), 0.0)
    neg_log10_p_y = -log_p_y / math.log(10.0)
    if formulation == "reference_code":
        proposed = focal_alpha * focal_modulator(one_minus_p_y, focal_gamma) * neg_log10_p_y
    else:
        p = jnp.exp(log_p)
        sq = jnp.sum(jnp.square(p * (1.0 - mask)), axis=-1)
        positive = sq > 0.0  # double where: √ has no finite gradient at 0
        weight = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
        alpha = jnp.square(one_minus_p_y) / num_classes
        proposed = alpha * weight * neg_log10_p_y
    return -a * log_p_y + b * proposed


losses.register("sce", sce_loss, head="linear")
