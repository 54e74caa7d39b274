"""Tapping a model's feature maps without changing the model (issue 11, Grad-CAM).

One convention for every registered backbone: a *layer* is a Flax submodule named by its module
path (``backbone/BatchNorm_2``), and its *feature map* is what its ``__call__`` returns when that
is 4-D, (B, h, w, C). :func:`feature_maps` lists them in the order the forward pass finishes them
(an abstract trace: nothing is computed); :func:`apply_tapped` applies the model with a tensor
added to one layer's output, so the gradient with respect to that tensor is the gradient with
respect to the feature map. Both intercept module calls with ``flax.linen.intercept_methods``,
as :func:`ferjax.models.profile.inference_cost` does. A module called more than once is tapped
at its first call.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax.errors import ConfigError


class FeatureMap(NamedTuple):
    path: str  # module path, e.g. "backbone/BasicBlock_7"
    shape: tuple[int, int, int]  # (h, w, C) of one example


def _path(module: nn.Module) -> str:
    return "/".join(module.scope.path)


def feature_maps(model: nn.Module, variables, input_shape: tuple[int, ...]) -> list[FeatureMap]:
    """Every module output of rank 4 in ``model.apply(variables, x, train=False)``, in completion order."""
    found: dict[str, FeatureMap] = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and isinstance(out, jax.Array) and out.ndim == 4:
            found.setdefault(_path(context.module), FeatureMap(_path(context.module), tuple(out.shape[1:])))
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                       jax.ShapeDtypeStruct((1, *input_shape[1:]), jnp.float32))
    return list(found.values())


def choose(maps: list[FeatureMap], path: str | None = None) -> FeatureMap:
    """The layer at ``path``, or by default the last one whose map is spatial (h·w > 1)."""
    if path:
        for fmap in maps:
            if fmap.path == path:
                return fmap
        raise ConfigError(f"no 4-D feature map at module path {path!r}; valid: {', '.join(m.path for m in maps) or 'none'}")
    spatial = [m for m in maps if m.shape[0] * m.shape[1] > 1]
    if not spatial:
        raise ConfigError("the model has no spatial feature map (h·w > 1) at this input size")
    return spatial[-1]


def apply_tapped(model: nn.Module, variables, x: jax.Array, path: str, delta: jax.Array):
    """``model.apply(variables, x, train=False)`` with ``delta`` added to layer ``path``'s output.

    Returns the model's output and that layer's (untapped) output.
    """
    taken: list[jax.Array] = []

    def add(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if not taken and context.method_name == "__call__" and _path(context.module) == path:
            taken.append(out)
            return out + delta.astype(out.dtype)
        return out

    with nn.intercept_methods(add):
        output = model.apply(variables, x, train=False)
    if not taken:
        raise ConfigError(f"module {path!r} was not called")
    return output, taken[0]
