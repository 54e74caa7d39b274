"""ResNet-18/34/50 (He et al., CVPR 2016) and SE-ResNet-34 (Hu et al., CVPR 2018).

The zoo baselines and CAMnet's comparators (SPEC §6, seed 003 §4.7). Standard layouts:
basic blocks (2,2,2,2) / (3,4,6,3), bottleneck blocks (3,4,6,3) for ResNet-50 with the stride
on the first 1×1 convolution as in the original paper and Keras (so its 32×32 MACs match the
thesis table's 0.078 G). Convolutions have no bias (BatchNorm follows). ``small_input=True``
replaces the 7×7/2 stem and its max-pool by one 3×3/1 convolution (CIFAR-style), the usual
choice for 32–48 px faces (issue 2: "a ResNet-18 for small inputs"). The backbone returns the
globally average-pooled features (512 or 2048); the classifier layer is the head.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv
from ferjax.models.layers import global_avg_pool


class Stem(nn.Module):
    """7×7/2 conv → BN → ReLU → 3×3/2 max-pool, or (``small_input``) 3×3/1 conv → BN → ReLU."""

    features: int = 64
    small_input: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.small_input:
            x = conv.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(x)
        else:
            x = conv.Conv(self.features, (7, 7), (2, 2), padding=3, use_bias=False, dtype=self.dtype)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, dtype=self.dtype)(x))
        if not self.small_input:
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        return x


class SqueezeExcite(nn.Module):
    """x · σ(W₂ ReLU(W₁ GAP(x))) with a reduction ratio (16 in SE-ResNet)."""

    reduction: int = 16
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        s = global_avg_pool(x)
        s = nn.relu(nn.Dense(max(1, channels // self.reduction), dtype=self.dtype)(s))
        s = nn.sigmoid(nn.Dense(channels, dtype=self.dtype)(s))
        return x * s[:, None, None, :]


def _shortcut(x: jax.Array, features: int, strides: int, train: bool, dtype) -> jax.Array:
    if x.shape[-1] == features and strides == 1:
        return x
    x = conv.Conv(features, (1, 1), (strides, strides), use_bias=False, dtype=dtype, name="proj")(x)
    return nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, dtype=dtype, name="proj_bn")(x)


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN (→ SE) + shortcut → ReLU."""

    features: int
    strides: int = 1
    se: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, dtype=self.dtype)  # noqa: E731
        s = (self.strides, self.strides)
        y = conv.Conv(self.features, (3, 3), s, use_bias=False, dtype=self.dtype)(x)
        y = nn.relu(bn()(y))
        y = bn()(conv.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(y))
        if self.se:
            y = SqueezeExcite(dtype=self.dtype)(y)
        return nn.relu(y + _shortcut(x, self.features, self.strides, train, self.dtype))


class Bottleneck(nn.Module):
    """conv1×1 (stride) → conv3×3 → conv1×1 (4× wide), each with BN, + shortcut → ReLU."""

    features: int
    strides: int = 1
    se: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, dtype=self.dtype)  # noqa: E731
        s = (self.strides, self.strides)
        y = nn.relu(bn()(conv.Conv(self.features, (1, 1), s, use_bias=False, dtype=self.dtype)(x)))
        y = nn.relu(bn()(conv.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(y)))
        y = bn()(conv.Conv(4 * self.features, (1, 1), use_bias=False, dtype=self.dtype)(y))
        if self.se:
            y = SqueezeExcite(dtype=self.dtype)(y)
        return nn.relu(y + _shortcut(x, 4 * self.features, self.strides, train, self.dtype))


class ResNet(nn.Module):
    stage_sizes: Sequence[int]
    bottleneck: bool = False
    se: bool = False
    width: int = 64
    small_input: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Stem(self.width, self.small_input, self.dtype)(x.astype(self.dtype), train)
        block = Bottleneck if self.bottleneck else BasicBlock
        for i, n in enumerate(self.stage_sizes):
            for j in range(n):
                strides = 2 if i > 0 and j == 0 else 1
                x = block(self.width * 2**i, strides, self.se, self.dtype)(x, train)
        return global_avg_pool(x)


_LAYOUTS = {
    "resnet18": dict(stage_sizes=(2, 2, 2, 2), bottleneck=False, se=False, small_input=True),
    "resnet34": dict(stage_sizes=(3, 4, 6, 3), bottleneck=False, se=False, small_input=False),
    "se_resnet34": dict(stage_sizes=(3, 4, 6, 3), bottleneck=False, se=True, small_input=False),
    "resnet50": dict(stage_sizes=(3, 4, 6, 3), bottleneck=True, se=False, small_input=False),
}


def _register(name: str, layout: dict) -> None:
    @models.MODELS.register(name, stage_sizes=layout["stage_sizes"], width=64, small_input=layout["small_input"])
    def _factory(config, num_classes: int) -> nn.Module:
        del num_classes
        hp = config.models[name]
        return ResNet(
            stage_sizes=tuple(hp.stage_sizes),
            bottleneck=layout["bottleneck"],
            se=layout["se"],
            width=hp.width,
            small_input=hp.small_input,
            dtype=models.compute_dtype(config),
        )


for _name, _layout in _LAYOUTS.items():
    _register(_name, _layout)
