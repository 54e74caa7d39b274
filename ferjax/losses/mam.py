"""MAM-SoftMax, the thesis's batch-adaptive soft margin (seed 001 eq. 23–26 and its algorithm).

Thesis formulation (SPEC §4), on the linear head's logits z (statistics held constant in
the gradient):  M_v = max(z) + ε (eq. 23), M_c = clip(M_v, 0, 4) (eq. 24),
M_U = mean(z) + M_c (eq. 25), loss = −log(e^{z_y − M_U} / (e^{z_y − M_U} + Σ_{j≠y} e^{z_j})) (eq. 26).
``statistics="batch"`` takes max/mean over the whole (global) batch, ``"sample"`` per row.
M_U is not shift-invariant (docs/losses.md); ``centred=True`` takes the statistics of the
row-centred logits z − mean_j z_j instead, which makes the thesis loss shift-invariant (ferjax
option; the reference code's absolute 0.001 keeps it shift-dependent either way).

``formulation="reference_code"`` reproduces what the author's public code computes:
m = max(z) + ε, a = log10 m, p_k = a·e^{z_k} / (S − e^{z_k} + a·e^{z_k} + 0.001) with S the
row's Σ e^{z_j}, rows renormalised to sum 1, loss −log p_y. It is only defined for m > 1;
a is floored at ``REFERENCE_MIN_A`` so the loss stays finite below that.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ferjax import losses
from ferjax.losses.common import as_f32, check_choice, cross_entropy, one_hot

STATISTICS = ("batch", "sample")
FORMULATIONS = ("thesis", "reference_code")
REFERENCE_MIN_A = 1e-6


def _max_and_mean(logits: jax.Array, statistics: str, centred: bool) -> tuple[jax.Array, jax.Array]:
    """(B, 1) or scalar max and mean of the (row-centred) logits, with no gradient."""
    axis, keepdims = (None, False) if statistics == "batch" else (-1, True)
    logits = jax.lax.stop_gradient(logits)
    if centred:
        logits = logits - jnp.mean(logits, axis=-1, keepdims=True)
    return jnp.max(logits, axis=axis, keepdims=keepdims), jnp.mean(logits, axis=axis, keepdims=keepdims)


def mam_margin(
    logits: jax.Array, epsilon: float = 0.2, clip_max: float = 4.0, statistics: str = "batch", centred: bool = False
) -> jax.Array:
    """M_U = mean(z) + clip(max(z) + ε, 0, clip_max) (eq. 23–25); scalar or (B, 1)."""
    check_choice("statistics", statistics, STATISTICS)
    z_max, z_mean = _max_and_mean(as_f32(logits), statistics, centred)
    return z_mean + jnp.clip(z_max + epsilon, 0.0, clip_max)


def _reference_code_loss(logits, mask, epsilon, statistics, centred):
    z_max, _ = _max_and_mean(logits, statistics, centred)
    a = jnp.maximum(jnp.log10(jnp.maximum(z_max + epsilon, 1.0)), REFERENCE_MIN_A)
    # Work with e^{z − r}, r ≥ every logit and ≥ log 0.001, so nothing overflows.
    r = jax.lax.stop_gradient(jnp.maximum(jnp.max(logits, axis=-1, keepdims=True), math.log(1e-3)))
    e = jnp.exp(logits - r)
    others = jnp.maximum(jnp.sum(e, axis=-1, keepdims=True) - e, 0.0)  # Σ_{j≠k} e^{z_j − r}
    log_p = jnp.log(a) + (logits - r) - jnp.log(others + a * e + 1e-3 * jnp.exp(-r))
    return cross_entropy(log_p, mask)  # −log(p_y / Σ_k p_k): the row renormalisation


def mam_softmax_loss(
    logits: jax.Array,
    labels: jax.Array,
    epsilon: float = 0.2,
    clip_max: float = 4.0,
    statistics: str = "batch",
    formulation: str = "thesis",
    centred: bool = False,
) -> jax.Array:
    """Per-example MAM-SoftMax of integer ``labels`` under linear-head ``logits`` (float32 math)."""
    check_choice("statistics", statistics, STATISTICS)
    check_choice("formulation", formulation, FORMULATIONS)
    logits = as_f32(logits)
    mask = one_hot(labels, logits.shape[-1])
    if formulation == "reference_code":
        return _reference_code_loss(logits, mask, epsilon, statistics, centred)
    return cross_entropy(logits - mam_margin(logits, epsilon, clip_max, statistics, centred) * mask, mask)


losses.register("mam_softmax", mam_softmax_loss, head="linear")
