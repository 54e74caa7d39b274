"""Small building blocks shared by the model families (SPEC §6)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Keras' ``he_normal`` (truncated normal, variance 2 / fan_in) and ``glorot_uniform``.
he_normal = jax.nn.initializers.he_normal()
glorot_uniform = jax.nn.initializers.glorot_uniform()


def _adaptive_mean(x: jax.Array, axis: int, size: int) -> jax.Array:
    length = x.shape[axis]
    if length % size == 0:
        shape = x.shape[:axis] + (size, length // size) + x.shape[axis + 1 :]
        return x.reshape(shape).mean(axis + 1)
    bins = [(math.floor(i * length / size), math.ceil((i + 1) * length / size)) for i in range(size)]
    return jnp.stack([jax.lax.slice_in_dim(x, a, b, axis=axis).mean(axis) for a, b in bins], axis)


def adaptive_avg_pool(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Average-pool (B, H, W, C) to (B, *size, C); bin i spans [⌊iH/s⌋, ⌈(i+1)H/s⌉) (PyTorch's rule).

    Works for any input size (an input smaller than ``size`` repeats pixels), which is what makes
    the resolution-agnostic models below run at 32, 48 and 100 px.
    """
    return _adaptive_mean(_adaptive_mean(x, 1, size[0]), 2, size[1])


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Keras ``UpSampling2D`` (nearest neighbour) on (B, H, W, C)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def global_avg_pool(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))
