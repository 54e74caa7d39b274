"""CAMnet, the Convolutional Attentional Masking Network (seed 003, ch. 5; SPEC §6).

ResNet-34 layout (stem 7×7/2 → max-pool, stages of 3, 4, 6, 3 basic blocks) in which both 3×3
convolutions of every basic block are Convolutional Attention Units (CAU, seed §5.1.1): a
ResNeSt split-attention convolution with radix 2 and cardinality 3, 4, 6, 3 per stage. Each
stage's output F is then re-weighted by a masking block (seed §5.1.2) of depth 4, 3, 2, 1:
H = (1 + M(F)) ⊙ F (seed eq. 5.1). The backbone ends with global average pooling and dropout
0.5; the 7-way classifier is the head.

Decisions where the seed is silent or inconsistent (docs/models.md):
- ResNet-34's widths 64/128/256/512 are not divisible by cardinality × radix (6, 8, 12, 6),
  which a grouped convolution needs for its input and output; the default stage widths are
  the nearest that are: 72, 120, 252, 510 (stage i's width must also divide by stage i+1's).
- The mask ends in a sigmoid (the seed names softmax, but also says M ∈ [0, 1] per element,
  which is the sigmoid's range); mask units are pre-activation bottleneck residual units;
  the decoder up-samples bilinearly and adds the encoder feature of the same scale (U-Net skip).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv
from ferjax.errors import ConfigError
from ferjax.models.layers import global_avg_pool
from ferjax.models.resnet import Stem


def _bn(train: bool, dtype) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, dtype=dtype)


class SplitAttentionConv(nn.Module):
    """CAU: grouped 3×3 conv to radix·C (groups = cardinality·radix) → BN → ReLU → split-attention.

    The radix splits are summed, globally pooled, passed through two grouped 1×1 layers
    (BN + ReLU between) and an r-softmax over the radix, and the splits are recombined with
    those weights (Zhang et al., ResNeSt 2020; seed Fig. 5.4).
    """

    features: int
    cardinality: int
    radix: int = 2
    strides: int = 1
    reduction: int = 4
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c, r, k = self.features, self.radix, self.cardinality
        y = conv.Conv(
            c * r, (3, 3), (self.strides, self.strides), feature_group_count=k * r, use_bias=False, dtype=self.dtype
        )(x)
        y = nn.relu(_bn(train, self.dtype)(y))
        splits = y.reshape(y.shape[:3] + (r, c))
        gap = jnp.mean(jnp.sum(splits, axis=3), axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        inner = math.ceil(max(c * r // self.reduction, 32) / k) * k
        a = conv.Conv(inner, (1, 1), feature_group_count=k, dtype=self.dtype)(gap)
        a = nn.relu(_bn(train, self.dtype)(a))
        a = conv.Conv(c * r, (1, 1), feature_group_count=k, dtype=self.dtype)(a)
        a = jax.nn.softmax(a.reshape((-1, k, r, c // k)).astype(jnp.float32), axis=2).astype(self.dtype)
        a = jnp.swapaxes(a, 1, 2).reshape((-1, 1, 1, r, c))
        return jnp.sum(splits * a, axis=3)


class CAMBlock(nn.Module):
    """Basic block with CAUs: CAU(stride) → CAU, + shortcut (1×1 conv + BN when shapes change) → ReLU."""

    features: int
    cardinality: int
    strides: int = 1
    radix: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = SplitAttentionConv(self.features, self.cardinality, self.radix, self.strides, dtype=self.dtype)(x, train)
        y = SplitAttentionConv(self.features, self.cardinality, self.radix, dtype=self.dtype)(y, train)
        shortcut = x
        if x.shape[-1] != self.features or self.strides != 1:
            s = (self.strides, self.strides)
            shortcut = conv.Conv(self.features, (1, 1), s, use_bias=False, dtype=self.dtype, name="proj")(x)
            shortcut = _bn(train, self.dtype)(shortcut)
        return nn.relu(y + shortcut)


class MaskUnit(nn.Module):
    """Pre-activation bottleneck residual unit: (BN → ReLU → conv) 1×1 C/4, 3×3 C/4, 1×1 C, + x."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        y = x
        for features, k in ((max(1, c // 4), 1), (max(1, c // 4), 3), (c, 1)):
            y = nn.relu(_bn(train, self.dtype)(y))
            y = conv.Conv(features, (k, k), use_bias=False, dtype=self.dtype)(y)
        return x + y


class MaskingBlock(nn.Module):
    """U-Net-shaped mask of ``depth`` scales: H = (1 + σ(decoder(encoder(F)))) ⊙ F."""

    depth: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = MaskUnit(self.dtype)(x, train)
        skips = []
        for _ in range(self.depth - 1):
            skips.append(y)
            y = MaskUnit(self.dtype)(nn.max_pool(y, (3, 3), (2, 2), padding="SAME"), train)
        for skip in reversed(skips):
            y = jax.image.resize(y, skip.shape, "bilinear") + skip
            y = MaskUnit(self.dtype)(y, train)
        for _ in range(2):
            y = nn.relu(_bn(train, self.dtype)(y))
            y = conv.Conv(x.shape[-1], (1, 1), use_bias=False, dtype=self.dtype)(y)
        return (1 + nn.sigmoid(y)) * x


class CAMnet(nn.Module):
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    widths: Sequence[int] = (72, 120, 252, 510)
    cardinalities: Sequence[int] = (3, 4, 6, 3)
    mask_depths: Sequence[int] = (4, 3, 2, 1)
    radix: int = 2
    dropout_rate: float = 0.5
    small_input: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Stem(self.widths[0], self.small_input, self.dtype)(x.astype(self.dtype), train)
        stages = zip(self.stage_sizes, self.widths, self.cardinalities, self.mask_depths, strict=True)
        for i, (n, width, cardinality, depth) in enumerate(stages):
            for j in range(n):
                strides = 2 if i > 0 and j == 0 else 1
                x = CAMBlock(width, cardinality, strides, self.radix, self.dtype)(x, train)
            x = MaskingBlock(depth, self.dtype)(x, train)
        return nn.Dropout(self.dropout_rate, deterministic=not train)(global_avg_pool(x))


def check_widths(widths: Sequence[int], cardinalities: Sequence[int], radix: int) -> None:
    """Every grouped conv needs its input and output widths divisible by cardinality × radix.

    The stem is ``widths[0]`` wide, so stage i's first block reads stage i-1's width.
    """
    inputs = (widths[0], *widths[:-1])
    for i, (cin, cout, k) in enumerate(zip(inputs, widths, cardinalities, strict=True)):
        if cin % (k * radix) or cout % (k * radix):
            raise ConfigError(
                f"config.models.camnet.widths: stage {i + 1} (cardinality {k}, radix {radix}) needs input "
                f"width {cin} and width {cout} divisible by {k * radix}"
            )


@models.MODELS.register(
    "camnet",
    stage_sizes=(3, 4, 6, 3),
    widths=(72, 120, 252, 510),
    cardinalities=(3, 4, 6, 3),
    mask_depths=(4, 3, 2, 1),
    radix=2,
    dropout_rate=0.5,
    small_input=False,
)
def _camnet(config, num_classes: int) -> nn.Module:
    del num_classes
    hp = config.models.camnet
    check_widths(hp.widths, hp.cardinalities, hp.radix)
    return CAMnet(
        stage_sizes=tuple(hp.stage_sizes),
        widths=tuple(hp.widths),
        cardinalities=tuple(hp.cardinalities),
        mask_depths=tuple(hp.mask_depths),
        radix=hp.radix,
        dropout_rate=hp.dropout_rate,
        small_input=hp.small_input,
        dtype=models.compute_dtype(config),
    )
