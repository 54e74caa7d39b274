"""Classification heads: a linear head (Wᵀx + b), a normalised cosine head (s·x̂·Ŵ_j) and a
bias-free angular head (‖W_j‖‖x‖cos θ_j, or ‖x‖cos θ_j with normalised weights).

Every head returns a :class:`HeadOutput`; ``logits`` are the un-margined logits used for
evaluation and prediction (SPEC §4: margins apply only in training).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


class HeadOutput(NamedTuple):
    logits: jax.Array  # (B, C) un-margined logits: Wᵀx+b or s·cos θ
    cosine: Optional[jax.Array] = None  # (B, C) cos θ_j in float32, clipped to [-1, 1]
    feature_norm: Optional[jax.Array] = None  # (B,) ‖x‖
    weight_norm: Optional[jax.Array] = None  # (C,) ‖W_j‖


class LinearHead(nn.Module):
    """z = Wᵀx + b, computed in float32."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> HeadOutput:
        x = x.astype(jnp.float32)
        logits = nn.Dense(self.num_classes, dtype=jnp.float32, name="dense")(x)
        return HeadOutput(logits=logits)


@jax.custom_jvp
def clip_unit(x: jax.Array) -> jax.Array:
    """x clipped to [−1, 1] with derivative 1 everywhere (SPEC §4 "Numerics").

    ``jnp.clip`` passes half the gradient at exactly ±1 and none beyond; a cosine only leaves
    [−1, 1] by rounding, so the derivative at and past the bounds is the one-sided limit from
    inside, 1. The value is exactly ``jnp.clip``'s.
    """
    return jnp.clip(x, -1.0, 1.0)


@clip_unit.defjvp
def _clip_unit_jvp(primals, tangents):
    return clip_unit(primals[0]), tangents[0]


def _l2_normalize(x: jax.Array, axis: int, eps: float = 1e-12) -> tuple[jax.Array, jax.Array]:
    norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) + eps)
    return x / norm, jnp.squeeze(norm, axis)


def _cosines(head: nn.Module, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Clipped cos θ_j (float32) between x and the head's "kernel" columns, with ‖x‖ and ‖W_j‖."""
    x = x.astype(jnp.float32)
    kernel = head.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], head.num_classes), jnp.float32)
    x_hat, x_norm = _l2_normalize(x, axis=-1)
    w_hat, w_norm = _l2_normalize(kernel, axis=0)
    return clip_unit(x_hat @ w_hat), x_norm, w_norm


class CosineHead(nn.Module):
    """cos θ_j = x̂·Ŵ_j (float32, clipped to [-1, 1]); eval logits are s·cos θ_j (SPEC §4)."""

    num_classes: int
    scale: float = 30.0

    @nn.compact
    def __call__(self, x: jax.Array) -> HeadOutput:
        cosine, x_norm, w_norm = _cosines(self, x)
        return HeadOutput(logits=self.scale * cosine, cosine=cosine, feature_norm=x_norm, weight_norm=w_norm)


class AngularHead(nn.Module):
    """Bias-free z_j = ‖W_j‖‖x‖cos θ_j = W_jᵀx (L-Softmax, seed 001 eq. 8) or, with
    ``normalize_weights``, ‖x‖cos θ_j (A-Softmax: ‖W_j‖ = 1, b = 0, eq. 9–10). Also returns the
    clipped cos θ_j and both norms, which the multiplicative-margin losses need."""

    num_classes: int
    normalize_weights: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> HeadOutput:
        cosine, x_norm, w_norm = _cosines(self, x)
        scale = x_norm[:, None] if self.normalize_weights else x_norm[:, None] * w_norm[None, :]
        return HeadOutput(logits=scale * cosine, cosine=cosine, feature_norm=x_norm, weight_norm=w_norm)


HEADS = {"linear": LinearHead, "cosine": CosineHead, "angular": AngularHead}
