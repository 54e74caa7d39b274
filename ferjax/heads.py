"""Classification heads: a linear head (Wᵀx + b) and a normalised cosine head (x̂·Ŵ_j).

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


def _l2_normalize(x: jax.Array, axis: int, eps: float = 1e-12) -> tuple[jax.Array, jax.Array]:
    norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) + eps)
    return x / norm, jnp.squeeze(norm, axis)


class CosineHead(nn.Module):
    """cos θ_j = x̂·Ŵ_j (float32, clipped to [-1, 1]); eval logits are s·cos θ_j (SPEC §4)."""

    num_classes: int
    scale: float = 30.0

    @nn.compact
    def __call__(self, x: jax.Array) -> HeadOutput:
        x = x.astype(jnp.float32)
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.num_classes), jnp.float32
        )
        x_hat, x_norm = _l2_normalize(x, axis=-1)
        w_hat, w_norm = _l2_normalize(kernel, axis=0)
        cosine = jnp.clip(x_hat @ w_hat, -1.0, 1.0)
        return HeadOutput(logits=self.scale * cosine, cosine=cosine, feature_norm=x_norm, weight_norm=w_norm)


HEADS = {"linear": LinearHead, "cosine": CosineHead}
