"""Seed 004's baseline CNN (SPEC §6).

3 × (conv 3×3 → LeakyReLU(0.01) → BatchNorm → max-pool 2), flatten, 4 × (Dense → LeakyReLU →
BatchNorm → Dropout(.25, .25, .25, .4)); the classifier layer is the head. Widths are not
given by the seed; defaults below are ferjax's choice. ``convs_per_stage`` > 1 (ferjax's
extension, not in the seed; default 1 = the seed) repeats the conv → LeakyReLU → BatchNorm unit
before each pooling, as the VGG-style nets that lead on FER-2013 do (SPEC §7). BatchNorm keeps
running statistics with momentum 0.9 (not Keras' 0.99): with 0.99 they lag by hundreds of
steps, which made validation accuracy meaningless for the first epochs of small sets (CK+ fold:
24 steps per epoch).
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv


class BaselineCNN(nn.Module):
    conv_features: Sequence[int] = (64, 128, 256)
    dense_features: Sequence[int] = (512, 256, 128, 64)
    dropout_rates: Sequence[float] = (0.25, 0.25, 0.25, 0.4)
    convs_per_stage: int = 1
    bn_momentum: float = 0.9
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        bn = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum, use_fast_variance=False,
            dtype=self.dtype,
        )
        x = x.astype(self.dtype)
        for features in self.conv_features:
            for _ in range(self.convs_per_stage):
                x = conv.Conv(features, (3, 3), padding="SAME", dtype=self.dtype)(x)
                x = nn.leaky_relu(x, 0.01)
                x = bn()(x)
            x = conv.max_pool(x, 2)
        x = x.reshape((x.shape[0], -1))
        for features, rate in zip(self.dense_features, self.dropout_rates, strict=True):
            x = nn.Dense(features, dtype=self.dtype)(x)
            x = nn.leaky_relu(x, 0.01)
            x = bn()(x)
            x = nn.Dropout(rate, deterministic=not train)(x)
        return x


@models.MODELS.register(
    "baseline_cnn",
    conv_features=(64, 128, 256),
    dense_features=(512, 256, 128, 64),
    dropout_rates=(0.25, 0.25, 0.25, 0.4),
    convs_per_stage=1,
    bn_momentum=0.9,
)
def _baseline_cnn(config, num_classes: int) -> nn.Module:
    del num_classes
    hp = config.models.baseline_cnn
    return BaselineCNN(
        conv_features=tuple(hp.conv_features),
        dense_features=tuple(hp.dense_features),
        dropout_rates=tuple(hp.dropout_rates),
        convs_per_stage=int(hp.convs_per_stage),
        bn_momentum=hp.bn_momentum,
        dtype=models.compute_dtype(config),
    )
