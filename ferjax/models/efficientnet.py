"""EfficientNet-B0 (Tan & Le, ICML 2019), a zoo baseline of the thesis' table (SPEC §6).

MBConv blocks (expand 1×1 → depthwise k×k → squeeze-excite (¼ of the block input) → linear
project 1×1) with swish, the B0 block table below, a 32-wide stem and a 1280-wide head conv;
stochastic depth on residual blocks grows linearly to ``drop_connect_rate`` and dropout
``dropout_rate`` precedes the embedding (Keras' top). ``width_coefficient`` and
``depth_coefficient`` are the compound-scaling knobs (B0 = 1.0, 1.0; smaller values give the
fast test models). BatchNorm eps 1e-3, momentum 0.99 (Keras).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv
from ferjax.models.layers import global_avg_pool
from ferjax.models.mobilenet_v2 import make_divisible

# (kernel, repeats, output channels, expansion, first stride) of EfficientNet-B0's stages.
BLOCKS = ((3, 1, 16, 1, 1), (3, 2, 24, 6, 2), (5, 2, 40, 6, 2), (3, 3, 80, 6, 2), (5, 3, 112, 6, 1), (5, 4, 192, 6, 2), (3, 1, 320, 6, 1))


class MBConv(nn.Module):
    features: int
    kernel: int
    expansion: int
    strides: int
    drop_rate: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, epsilon=1e-3, dtype=self.dtype)  # noqa: E731
        channels = x.shape[-1]
        y = x
        if self.expansion != 1:
            y = nn.swish(bn()(conv.Conv(channels * self.expansion, (1, 1), use_bias=False, dtype=self.dtype)(y)))
        y = conv.Conv(
            y.shape[-1], (self.kernel, self.kernel), (self.strides, self.strides),
            feature_group_count=y.shape[-1], use_bias=False, dtype=self.dtype,
        )(y)
        y = nn.swish(bn()(y))
        s = global_avg_pool(y)[:, None, None, :]
        s = nn.swish(conv.Conv(max(1, channels // 4), (1, 1), dtype=self.dtype)(s))
        y = y * nn.sigmoid(conv.Conv(y.shape[-1], (1, 1), dtype=self.dtype)(s))
        y = bn()(conv.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype)(y))
        if self.strides == 1 and channels == self.features:
            y = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train)(y)
            y = x + y
        return y


class EfficientNet(nn.Module):
    width_coefficient: float = 1.0
    depth_coefficient: float = 1.0
    drop_connect_rate: float = 0.2
    dropout_rate: float = 0.2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        width = lambda c: make_divisible(c * self.width_coefficient)  # noqa: E731
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, epsilon=1e-3, dtype=self.dtype)  # noqa: E731
        x = conv.Conv(width(32), (3, 3), (2, 2), use_bias=False, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.swish(bn()(x))
        repeats = [math.ceil(self.depth_coefficient * n) for _, n, _, _, _ in BLOCKS]
        index = 0
        for (kernel, _, features, expansion, strides), n in zip(BLOCKS, repeats, strict=True):
            for i in range(n):
                rate = self.drop_connect_rate * index / sum(repeats)
                x = MBConv(width(features), kernel, expansion, strides if i == 0 else 1, rate, self.dtype)(x, train)
                index += 1
        x = nn.swish(bn()(conv.Conv(width(1280), (1, 1), use_bias=False, dtype=self.dtype)(x)))
        return nn.Dropout(self.dropout_rate, deterministic=not train)(global_avg_pool(x))


@models.MODELS.register(
    "efficientnet_b0", width_coefficient=1.0, depth_coefficient=1.0, drop_connect_rate=0.2, dropout_rate=0.2
)
def _efficientnet_b0(config, num_classes: int) -> nn.Module:
    del num_classes
    hp = config.models.efficientnet_b0
    return EfficientNet(
        width_coefficient=hp.width_coefficient,
        depth_coefficient=hp.depth_coefficient,
        drop_connect_rate=hp.drop_connect_rate,
        dropout_rate=hp.dropout_rate,
        dtype=models.compute_dtype(config),
    )
