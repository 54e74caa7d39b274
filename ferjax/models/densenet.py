"""DenseNet-121 (Huang et al., CVPR 2017), a zoo baseline of the thesis' table (SPEC §6).

7×7/2 stem (64) and 3×3/2 max-pool; dense blocks of (6, 12, 24, 16) layers, each
BN → ReLU → 1×1 conv (4·k) → BN → ReLU → 3×3 conv (k = growth rate 32) concatenated onto its
input; transitions BN → ReLU → 1×1 conv (×0.5) → 2×2 average pool; final BN → ReLU → global
average pool (1024-d at the default widths). BatchNorm eps 1.001e-5 as in Keras.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models.layers import global_avg_pool


class DenseNet(nn.Module):
    block_sizes: Sequence[int] = (6, 12, 24, 16)
    growth_rate: int = 32
    stem_features: int = 64
    compression: float = 0.5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        bn_relu = lambda y: nn.relu(  # noqa: E731
            nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.9, epsilon=1.001e-5, dtype=self.dtype)(y)
        )
        conv = lambda f, k: nn.Conv(f, (k, k), use_bias=False, dtype=self.dtype)  # noqa: E731
        x = nn.Conv(self.stem_features, (7, 7), (2, 2), padding=3, use_bias=False, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.max_pool(bn_relu(x), (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for i, size in enumerate(self.block_sizes):
            for _ in range(size):
                y = conv(4 * self.growth_rate, 1)(bn_relu(x))
                y = conv(self.growth_rate, 3)(bn_relu(y))
                x = jnp.concatenate([x, y], axis=-1)
            if i < len(self.block_sizes) - 1:
                x = conv(int(x.shape[-1] * self.compression), 1)(bn_relu(x))
                x = nn.avg_pool(x, (2, 2), (2, 2))
        return global_avg_pool(bn_relu(x))


@models.MODELS.register("densenet121", block_sizes=(6, 12, 24, 16), growth_rate=32, stem_features=64)
def _densenet121(config, num_classes: int) -> nn.Module:
    del num_classes
    hp = config.models.densenet121
    return DenseNet(
        block_sizes=tuple(hp.block_sizes),
        growth_rate=hp.growth_rate,
        stem_features=hp.stem_features,
        dtype=models.compute_dtype(config),
    )
