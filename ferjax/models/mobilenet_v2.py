"""MobileNetV2 (Sandler et al., CVPR 2018), a zoo baseline of the thesis' table (SPEC §6).

Inverted residual blocks (expand 1×1 → depthwise 3×3 → linear project 1×1, ReLU6, residual
when shapes match) with the paper's (t, c, n, s) table, a 32-wide 3×3/2 stem and a 1280-wide
last 1×1 convolution; widths scale with ``alpha`` (rounded to multiples of 8, the last layer
never below 1280, as in Keras). BatchNorm eps 1e-3, momentum 0.999 (Keras). The backbone
returns the globally pooled 1280-d features; dropout-free like Keras' classifier top.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv
from ferjax.models.layers import global_avg_pool

# (expansion t, output channels c, repeats n, first stride s) from the paper's Table 2.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never losing more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    features: int
    expansion: int
    strides: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.999, epsilon=1e-3, dtype=self.dtype)  # noqa: E731
        channels = x.shape[-1]
        y = x
        if self.expansion != 1:
            y = nn.relu6(bn()(conv.Conv(channels * self.expansion, (1, 1), use_bias=False, dtype=self.dtype)(y)))
        y = conv.Conv(
            y.shape[-1], (3, 3), (self.strides, self.strides), feature_group_count=y.shape[-1],
            use_bias=False, dtype=self.dtype,
        )(y)
        y = nn.relu6(bn()(y))
        y = bn()(conv.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype)(y))
        return x + y if self.strides == 1 and channels == self.features else y


class MobileNetV2(nn.Module):
    alpha: float = 1.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.999, epsilon=1e-3, dtype=self.dtype)  # noqa: E731
        x = conv.Conv(make_divisible(32 * self.alpha), (3, 3), (2, 2), use_bias=False, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.relu6(bn()(x))
        for t, c, n, s in BLOCKS:
            for i in range(n):
                x = InvertedResidual(make_divisible(c * self.alpha), t, s if i == 0 else 1, self.dtype)(x, train)
        last = make_divisible(1280 * self.alpha) if self.alpha > 1.0 else 1280
        x = nn.relu6(bn()(conv.Conv(last, (1, 1), use_bias=False, dtype=self.dtype)(x)))
        return global_avg_pool(x)


@models.MODELS.register("mobilenet_v2", alpha=1.0)
def _mobilenet_v2(config, num_classes: int) -> nn.Module:
    del num_classes
    return MobileNetV2(alpha=config.models.mobilenet_v2.alpha, dtype=models.compute_dtype(config))
