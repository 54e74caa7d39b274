"""Convolutions as slices + one matmul and max-pooling as slices, for XLA's CPU backend (SPEC §6).

XLA's CPU convolutions are fast for large maps but very slow for the shapes EmoSynthNet's
train step is made of: input-dilated convolutions (every transposed convolution: a 4×4
stride-2 transpose on a 3×3×512 map took 10 s forward+backward at batch 64, against 0.2 s as
slices + matmul), 1×1 convolutions and small maps; and the backward pass of a
``reduce_window`` max-pool (``select_and_scatter``) is slow. The im2col
path below computes exactly the same function: pad (interior padding for input dilation),
take the kh·kw shifted, strided slices, concatenate them on the channel axis and do one
matmul with the kernel reshaped to (kh·kw·C_in, C_out). Its gradient is slices, pads and
matmuls, which XLA's CPU backend runs at matmul speed.

``impl``: ``"xla"`` (``lax.conv_general_dilated`` everywhere), ``"im2col"`` (every
convolution), or ``"auto"`` (default) — on the CPU backend im2col for transposed, 1×1 and
small-map convolutions and XLA's for the rest (XLA's everywhere where oneDNN compiles them:
bf16 on CPUs with bf16 units, :mod:`ferjax.xla_options`); XLA everywhere on GPU/TPU (cuDNN / the MXU).
Max-pooling follows the same switch (stride 1 ``SAME``, and non-overlapping windows).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ferjax import xla_options
from ferjax.errors import ConfigError

IMPLS = ("auto", "xla", "im2col")
_override: list[str] = []  # innermost ``forced(impl)`` wins over every layer's own impl


@contextlib.contextmanager
def forced(impl: str) -> Iterator[None]:
    """Build/trace every ferjax convolution with ``impl`` inside the block (e.g. to compare impls)."""
    _check(impl)
    _override.append(impl)
    try:
        yield
    finally:
        _override.pop()


def _check(impl: str) -> str:
    if impl not in IMPLS:
        raise ConfigError(f"conv_impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl


def resolve(impl: str) -> str:
    """What a layer built now uses: a ``forced`` impl if any, else its own; ``auto`` off CPU is ``xla``."""
    impl = _override[-1] if _override else _check(impl)
    return "xla" if impl == "auto" and jax.default_backend() != "cpu" else impl


def _pads(padding, in_sizes, window, strides) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        return list(lax.padtype_to_pads(in_sizes, window, strides, padding))
    return [tuple(p) for p in padding]


def im2col_conv_general_dilated(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
    dimension_numbers=None, feature_group_count=1, precision=None, preferred_element_type=None,
):
    """``lax.conv_general_dilated`` for NHWC inputs and HWIO kernels, computed as im2col + matmul.

    Same signature as the lax function (what ``flax.linen.Conv(conv_general_dilated=...)``
    calls); any layout, grouping or kernel dilation it does not cover goes to lax unchanged.
    """
    nhwc = lhs.ndim == 4 and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == lax.conv_dimension_numbers(
        lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")
    )
    if not nhwc or feature_group_count != 1 or any(d != 1 for d in (rhs_dilation or (1, 1))):
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, precision=precision, preferred_element_type=preferred_element_type,
        )
    kh, kw, cin, cout = rhs.shape
    dil = tuple(lhs_dilation or (1, 1))
    if isinstance(padding, str) and dil != (1, 1):
        raise ValueError("input-dilated convolution needs explicit padding pairs (as lax.conv_general_dilated)")
    pads = _pads(padding, lhs.shape[1:3], (kh, kw), window_strides)
    x = lax.pad(lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in zip(pads, dil)), (0, 0, 0)])
    sh, sw = window_strides
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    cols = [
        lax.slice(x, (0, i, j, 0), (x.shape[0], i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1, cin), (1, sh, sw, 1))
        for i in range(kh) for j in range(kw)
    ]
    patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
    return jnp.dot(patches, rhs.reshape(kh * kw * cin, cout), precision=precision, preferred_element_type=preferred_element_type)


SMALL_MAP = 12 * 12  # auto: im2col for input maps of at most this many pixels (H·W; measured, RESULTS.md)


def _prefers_im2col(lhs, rhs, lhs_dilation) -> bool:
    """``auto`` on CPU: im2col for input-dilated (transposed), 1×1 and small-map convolutions.

    XLA's own CPU convolutions win on the larger maps (EmoSynthNet's 48×48 and 24×24 layers).
    Where the computation compiles with oneDNN (:mod:`ferjax.xla_options`: bf16 on bf16 units), XLA's
    convolutions everywhere: oneDNN runs them, faster than im2col's copies + matmul.
    """
    if xla_options.uses_onednn(lhs.dtype):
        return False
    dilated = any(d != 1 for d in (lhs_dilation or (1, 1)))
    return dilated or rhs.shape[0] == rhs.shape[1] == 1 or lhs.shape[1] * lhs.shape[2] <= SMALL_MAP


def auto_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, **kwargs):
    """``lax.conv_general_dilated``, routed per call to im2col where that is faster on CPU."""
    conv = im2col_conv_general_dilated if _prefers_im2col(lhs, rhs, lhs_dilation) else lax.conv_general_dilated
    return conv(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, **kwargs)


def conv_general_dilated(impl: str):
    """The ``conv_general_dilated`` a Flax ``nn.Conv`` should use for ``impl`` (None = lax's)."""
    return {"xla": None, "auto": auto_conv_general_dilated, "im2col": im2col_conv_general_dilated}[resolve(impl)]


def Conv(*args, impl: str = "auto", **kwargs) -> nn.Conv:  # noqa: N802 - a module factory
    """``flax.linen.Conv`` whose convolution follows ``impl`` (same parameters, same function)."""
    return nn.Conv(*args, conv_general_dilated=conv_general_dilated(impl), **kwargs)


def _transpose_pads(padding, kernel_size: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """The padding ``lax.conv_transpose`` applies to the stride-dilated input (same rule as lax)."""
    if not isinstance(padding, str):
        return [tuple(p) for p in padding]
    pads = []
    for k, s in zip(kernel_size, strides):
        if padding == "SAME":
            total = k + s - 2
            before = k - 1 if s > k - 1 else -(-total // 2)
        elif padding == "VALID":
            total = k + s - 2 + max(k - s, 0)
            before = k - 1
        else:
            raise ConfigError(f"transposed convolution padding must be SAME, VALID or explicit pairs, got {padding!r}")
        pads.append((before, total - before))
    return pads


def ConvTranspose(features: int, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1), padding="SAME",  # noqa: N802
                  impl: str = "auto", **kwargs) -> nn.Module:
    """``flax.linen.ConvTranspose`` (``transpose_kernel=False``) with the same kernel shape and function.

    With im2col it is the equivalent ``nn.Conv`` over the stride-dilated input (what
    ``lax.conv_transpose`` computes), so it avoids XLA CPU's input-dilated convolution.
    """
    if resolve(impl) == "xla":
        return nn.ConvTranspose(features, tuple(kernel_size), tuple(strides), padding, **kwargs)
    return nn.Conv(
        features, tuple(kernel_size), (1, 1), _transpose_pads(padding, kernel_size, strides),
        input_dilation=tuple(strides), conv_general_dilated=im2col_conv_general_dilated, **kwargs,
    )


def _max_of_slices(x: jax.Array, window: int, stride: int, rows: int, cols: int) -> jax.Array:
    """Max-pooling as the elementwise maximum of the window's ``window``² shifted, strided slices of
    ``x``: ``rows``×``cols`` outputs. Its gradient is slices and selects (``lax.max``'s rule: a tie
    between two values gives each half), where ``reduce_window``'s is a ``select_and_scatter``."""
    shifted = [
        x[:, i : i + (rows - 1) * stride + 1 : stride, j : j + (cols - 1) * stride + 1 : stride]
        for i in range(window) for j in range(window)
    ]
    return functools.reduce(jnp.maximum, shifted)


def max_pool(x: jax.Array, window: int, impl: str = "auto") -> jax.Array:
    """Non-overlapping max-pooling: ``window``×``window`` windows, stride ``window``, ``VALID``
    (``nn.max_pool(x, (window, window), (window, window))``) on (B, H, W, C).

    With im2col: :func:`_max_of_slices`, the same values. XLA's ``select_and_scatter`` gradient took
    a third of the CK+ recipe's train step on a 2-core EPYC (benchmarks/RESULTS.md "Max-pooling as
    slices"). Only at a tie (a window of equal values, e.g. over the zero padding of a random crop)
    do the gradients differ: shared between the tied elements instead of given to one of them,
    another valid subgradient.
    """
    if resolve(impl) == "xla":
        return nn.max_pool(x, (window, window), (window, window))
    return _max_of_slices(x, window, window, x.shape[1] // window, x.shape[2] // window)


def max_pool_same(x: jax.Array, window: int, impl: str = "auto") -> jax.Array:
    """Stride-1 ``SAME`` max-pooling (Keras ``MaxPooling2D(window, 1, 'same')``) on (B, H, W, C).

    With im2col: the maximum of the window's shifted slices of the −∞-padded input.
    """
    if resolve(impl) == "xla":
        return nn.max_pool(x, (window, window), (1, 1), padding="SAME")
    (top, bottom), (left, right) = _pads("SAME", x.shape[1:3], (window, window), (1, 1))
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-jnp.inf)
    return _max_of_slices(padded, window, 1, *x.shape[1:3])
