"""EmoSynthNet (seed 001, "Model (EmoSynthNet)"; layer facts in SPEC §6).

A VGG-like *analysis* path (conv units with 3×3 and linear 1×1 convolutions, average pooling,
multi-scale concatenations), an Inception-like *side branch* on the first block's output, and a
*synthesis* path (transposed convolutions and ×2 up-sampling) that concatenates the side
branch, followed by a two-layer dense head. Conv unit = Conv → ELU → BatchNorm(eps 1e-3,
momentum 0.99) → Dropout; 1×1 convs are linear; convolutions he_normal, dense layers
glorot_uniform (Keras' defaults in the notebook), zero biases; average pooling excludes padding.

``variant="author"``: the author's public notebook graph, layer for layer (exact at 100×100×1:
224,922,503 parameters with its 7-way classifier; 34 weight layers). Its shape arithmetic
(zero-padding, a 4×4 "valid" transposed conv meeting a 5×5-pooled side branch, a flatten of
40×40×256) only closes for inputs of 64–100 px; other sizes raise a ``ConfigError``.

``variant="paper"`` (default): the thesis model, the same design made resolution-agnostic —
every pooling halves with "same" padding, the first transposed conv is 4×4 with stride 2, the
side branch is adaptively average-pooled onto the decoder grid, and the compact head pools
the synthesis output to ``head_grid``² before the dense layers (instead of the author's
409,600-wide flatten). Plus the thesis' auxiliary classifier on the side branch (Inception
style, training only; its loss weight is ``config.aux_loss_weight``, 0 removes it).

The L2 penalty (``side_l2`` = 1e-3, Keras' ``l2(1e-3)``: 1e-3·Σw²) on each side module's second
3×3 and second 5×5 kernel is *sown* into the ``"losses"`` collection (each term overwrites its
previous value); the train step applies the model with ``mutable=["batch_stats", "losses"]``
and adds the sum of that collection's leaves to the loss.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax import models
from ferjax.errors import ConfigError
from ferjax.models import conv
from ferjax.models.layers import adaptive_avg_pool, glorot_uniform, he_normal, upsample_nearest


def _avg_pool(x: jax.Array, window: int, padding: str) -> jax.Array:
    return nn.avg_pool(x, (window, window), (window, window), padding=padding, count_include_pad=False)


class SideModule(nn.Module):
    """The notebook's ``auxilliary_module``: five ReLU paths concatenated to 640 channels.

    [1×1 128 → 3×3 192], [same 1×1 → second 3×3 192], [1×1 64 → 5×5 96], [same 1×1 → second
    5×5 96], [max-pool 3/1 → 1×1 64]. The two "second" kernels carry the L2 penalty.
    """

    width: float = 1.0
    l2: float = 1e-3
    dtype: jnp.dtype = jnp.float32
    conv_impl: str = "auto"

    def _conv(self, features: int, k: int, name: str) -> nn.Conv:
        return conv.Conv(
            max(1, round(features * self.width)), (k, k), kernel_init=he_normal, dtype=self.dtype, name=name,
            impl=self.conv_impl,
        )

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        reduce3 = nn.relu(self._conv(128, 1, "reduce3x3")(x))
        reduce5 = nn.relu(self._conv(64, 1, "reduce5x5")(x))
        pooled = conv.max_pool_same(x, 3, self.conv_impl)
        convs = {
            "conv3x3_1": (192, 3, reduce3),
            "conv3x3_2": (192, 3, reduce3),
            "conv5x5_1": (96, 5, reduce5),
            "conv5x5_2": (96, 5, reduce5),
            "pool_proj": (64, 1, pooled),
        }
        outputs = []
        for name, (features, k, inputs) in convs.items():
            layer = self._conv(features, k, name)
            outputs.append(nn.relu(layer(inputs)))
            if name.endswith("_2") and self.l2 > 0:
                kernel = layer.variables["params"]["kernel"]
                self.sow("losses", f"l2_{name}", self.l2 * jnp.sum(jnp.square(kernel)), reduce_fn=lambda _, new: new)
        return jnp.concatenate(outputs, axis=-1)


class AuxClassifier(nn.Module):
    """Inception-style auxiliary classifier, scaled to the thesis' 21M budget.

    Pool to 2×2 → 1×1 conv 128 (ReLU) → FC 512 (ReLU) → dropout .7 → logits (Inception v1: 4×4,
    128, FC 1024, dropout .7). It reads the side branch on the decoder grid.
    """

    num_classes: int
    width: float = 1.0
    dtype: jnp.dtype = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = adaptive_avg_pool(x, (2, 2))
        x = conv.Conv(max(1, round(128 * self.width)), (1, 1), kernel_init=he_normal, dtype=self.dtype, impl=self.conv_impl)(x)
        x = nn.relu(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(max(1, round(512 * self.width)), kernel_init=glorot_uniform, dtype=self.dtype)(x))
        x = nn.Dropout(0.7, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=glorot_uniform, dtype=jnp.float32)(x.astype(jnp.float32))


class EmoSynthNet(nn.Module):
    variant: str = "paper"
    width: float = 1.0  # multiplies every layer width (1.0 = the thesis/notebook widths)
    head_grid: int = 7  # paper: synthesis output pooled to head_grid × head_grid before the head
    side_l2: float = 1e-3
    aux_classes: Optional[int] = None  # paper: auxiliary classifier with this many classes
    dtype: jnp.dtype = jnp.float32
    conv_impl: str = "auto"  # ferjax.models.conv: im2col on CPU, XLA's convolutions elsewhere

    def _w(self, features: int) -> int:
        return max(1, round(features * self.width))

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        author = self.variant == "author"
        pool = "VALID" if author else "SAME"
        impl = self.conv_impl
        unit_bn = lambda: nn.BatchNorm(use_running_average=not train, use_fast_variance=False, momentum=0.99, epsilon=1e-3, dtype=self.dtype)  # noqa: E731

        def unit(y, features, rate, padding="SAME"):
            y = conv.Conv(self._w(features), (3, 3), padding=padding, kernel_init=he_normal, dtype=self.dtype, impl=impl)(y)
            return nn.Dropout(rate, deterministic=not train)(unit_bn()(nn.elu(y)))

        def linear1x1(y, features):
            return conv.Conv(self._w(features), (1, 1), kernel_init=he_normal, dtype=self.dtype, impl=impl)(y)

        x = x.astype(self.dtype)
        if author and not 64 <= min(x.shape[1:3]) <= 100:
            raise ConfigError(
                f"emosynthnet variant='author' (the notebook graph) builds only at 64-100 px, got "
                f"{x.shape[1]}x{x.shape[2]}; use --config.models.emosynthnet.variant=paper"
            )
        # Block 1 (analysis), concatenated with the pooled raw input.
        y = unit(x, 32, 0.25)
        y = unit(linear1x1(y, 64), 64, 0.5)
        y = unit(y, 64, 0.25)
        x1 = jnp.concatenate([_avg_pool(y, 2, pool), _avg_pool(x, 2, pool)], axis=-1)
        # Side branch: two Inception-like modules.
        side = SideModule(self.width, self.side_l2, self.dtype, impl, name="side1")(x1)
        side = SideModule(self.width, self.side_l2, self.dtype, impl, name="side2")(side)
        # Block 2.
        y = unit(x1, 128, 0.25)
        y = linear1x1(y, 128)
        if author:
            y = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = unit(unit(y, 128, 0.5), 128, 0.25)
        x2 = _avg_pool(y, 2, pool)
        residual = _avg_pool(x2, 2, pool)
        # Block 3, concatenated with the pooled block-2 output.
        y = unit(x2, 256, 0.25)
        y = unit(unit(linear1x1(y, 256), 256, 0.5), 256, 0.25)
        x3 = jnp.concatenate([_avg_pool(y, 2, pool), residual], axis=-1)
        # Block 4.
        if author:
            x3 = jnp.pad(x3, ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = linear1x1(unit(x3, 512, 0.25), 512)
        y = unit(y, 512, 0.25, padding="VALID" if author else "SAME")
        x4 = _avg_pool(y, 2, "SAME")
        # Synthesis path, joined by the side branch (transposed convs named explicitly: same tree for every impl).
        transpose_kw = dict(kernel_init=he_normal, dtype=self.dtype, impl=impl)
        if author:
            d = conv.ConvTranspose(self._w(512), (4, 4), padding="VALID", name="ConvTranspose_0", **transpose_kw)(x4)
            side = _avg_pool(side, 5, "SAME")
            if side.shape[1:3] != d.shape[1:3]:
                raise ConfigError(
                    f"emosynthnet variant='author' cannot join its side branch {side.shape[1:3]} and "
                    f"decoder {d.shape[1:3]} at {x.shape[1]}x{x.shape[2]} px; use variant=paper"
                )
        else:
            d = conv.ConvTranspose(self._w(512), (4, 4), (2, 2), name="ConvTranspose_0", **transpose_kw)(x4)
            side = adaptive_avg_pool(side, d.shape[1:3])
        y = upsample_nearest(jnp.concatenate([side, nn.elu(d)], axis=-1))
        y = conv.ConvTranspose(self._w(256), (3, 3), name="ConvTranspose_1", **transpose_kw)(y)
        y = upsample_nearest(nn.elu(y))
        # Dense head (the classifier layer itself is the Classifier's head).
        if not author:
            y = adaptive_avg_pool(y, (self.head_grid, self.head_grid))
        y = y.reshape((y.shape[0], -1))
        for features, rate in ((512, 0.4), (512, 0.2)):
            y = nn.elu(nn.Dense(self._w(features), kernel_init=glorot_uniform, dtype=self.dtype)(y))
            y = nn.Dropout(rate, deterministic=not train)(unit_bn()(y))
        if self.aux_classes is None or author or not (train or self.is_initializing()):
            return y
        aux = AuxClassifier(self.aux_classes, self.width, self.dtype, impl, name="aux")(side, train)
        return (y, aux) if train else y


@models.MODELS.register("emosynthnet", variant="paper", width=1.0, head_grid=7, side_l2=1e-3, conv_impl="auto")
def _emosynthnet(config, num_classes: int) -> nn.Module:
    hp = config.models.emosynthnet
    if hp.variant not in ("paper", "author"):
        raise ConfigError(f"config.models.emosynthnet.variant must be 'paper' or 'author', got {hp.variant!r}")
    aux = hp.variant == "paper" and config.get("aux_loss_weight", 0.0) > 0
    return EmoSynthNet(
        variant=hp.variant,
        width=hp.width,
        head_grid=hp.head_grid,
        side_l2=hp.side_l2,
        aux_classes=num_classes if aux else None,
        dtype=models.compute_dtype(config),
        conv_impl=hp.conv_impl,
    )
