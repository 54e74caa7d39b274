"""Plain softmax cross-entropy on a linear head (SPEC §4, first row)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ferjax import losses


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example CE of integer ``labels`` under ``logits`` (float32 math)."""
    logits = logits.astype(jnp.float32)
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


losses.register("softmax", softmax_cross_entropy, head="linear")
