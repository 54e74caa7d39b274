"""VGG-19 (Simonyan & Zisserman, ICLR 2015), a zoo baseline of the thesis' table (SPEC §6).

Configuration E: 3×3 convolutions with bias and ReLU in stages of (2, 2, 4, 4, 4) with widths
64…512, each followed by 2×2 max-pooling, then flatten → FC 4096 → FC 4096 (ReLU, dropout .5);
the 1000-/10-way classifier is the head. As in Keras' ``VGG19(include_top=True)``, the flatten
takes whatever map the input leaves (1×1×512 at 32 px, 7×7×512 at 224 px), which is what the
thesis' 0.417 GMACs at 32×32 counts. No BatchNorm (the original network).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.models import conv


class VGG(nn.Module):
    stage_depths: Sequence[int] = (2, 2, 4, 4, 4)
    width: int = 64
    fc_features: int = 4096
    dropout_rate: float = 0.5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.astype(self.dtype)
        for i, depth in enumerate(self.stage_depths):
            for _ in range(depth):
                x = nn.relu(conv.Conv(self.width * 2 ** min(i, 3), (3, 3), dtype=self.dtype)(x))
            x = conv.max_pool(x, 2)
        x = x.reshape((x.shape[0], -1))
        for _ in range(2):
            x = nn.relu(nn.Dense(self.fc_features, dtype=self.dtype)(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return x


@models.MODELS.register("vgg19", stage_depths=(2, 2, 4, 4, 4), width=64, fc_features=4096, dropout_rate=0.5)
def _vgg19(config, num_classes: int) -> nn.Module:
    del num_classes
    hp = config.models.vgg19
    return VGG(
        stage_depths=tuple(hp.stage_depths),
        width=hp.width,
        fc_features=hp.fc_features,
        dropout_rate=hp.dropout_rate,
        dtype=models.compute_dtype(config),
    )
