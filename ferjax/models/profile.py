"""Deterministic model figures: parameters, multiply-accumulates and weight-layer depth.

Counting rules (SPEC §6, docs/models.md):
- *parameters* are every variable of the model: trainable weights plus BatchNorm's running
  mean/variance, as Keras' "Total params" counts them (the thesis' table and the author's
  224,922,503 are Keras totals). Counted on ``jax.eval_shape`` of ``init``: nothing allocated.
- *MACs* are the multiply-accumulates of convolutions, transposed convolutions and dense
  layers, read from their output and kernel shapes while tracing the inference forward pass
  (``train=False``) abstractly: ``|output| · k_h·k_w·C_in/groups``. A transposed convolution
  counts as it is computed, a stride-1 convolution over its zero-dilated, padded input (this
  reproduces SPEC §6's measured 9.59 GMACs of the author graph at 100 px to 0.2%).
  BatchNorm, activations, pooling and additions are not counted.
  The thesis' "GFLOPs" are TF-profiler float operations ÷ 2, i.e. the same MACs plus those
  small element-wise terms.
- *depth* is the number of weight layers (conv, transposed conv, dense) the inference graph
  runs, head included (projection shortcuts and SE layers count).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ferjax import losses, models
from ferjax.models.classifier import Classifier, build_model

_WEIGHT_LAYERS = (nn.Conv, nn.ConvTranspose, nn.Dense)


def model_config(name: str, aux_loss_weight: float = 0.0, **hparams) -> ml_collections.ConfigDict:
    """A minimal config that builds model ``name`` with its defaults, ``hparams`` overriding them,
    and the plain softmax loss (a linear classifier layer, as the thesis' table counts)."""
    config = ml_collections.ConfigDict(
        dict(model=name, dtype="float32", embedding_dim=0, aux_loss_weight=aux_loss_weight, models=models.MODELS.default_config(),
             loss="softmax", losses=losses.LOSSES.default_config())
    )
    config.models[name].update(hparams)
    return config


def build_classifier(config: ml_collections.ConfigDict, num_classes: int) -> Classifier:
    """The model the thesis' table counts: :func:`build_model` (backbone + the loss's head)."""
    return build_model(config, num_classes)[0]


def abstract_variables(model: nn.Module, shape: tuple[int, ...]):
    """Variable shapes of ``model`` on inputs of ``shape`` (B, H, W, C), without allocating them."""
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    return jax.eval_shape(lambda r: model.init(r, jnp.zeros(shape, jnp.float32), train=False), rngs)


def count_variables(variables, collections: tuple[str, ...] = ("params", "batch_stats")) -> int:
    return sum(math.prod(leaf.shape) for c in collections for leaf in jax.tree.leaves(variables.get(c, {})))


class Cost(NamedTuple):
    macs: int  # per image
    depth: int  # weight layers executed


def inference_cost(model: nn.Module, variables, shape: tuple[int, ...]) -> Cost:
    """MACs per image and weight-layer depth of ``model.apply(..., train=False)`` (see module doc)."""
    layers: dict[tuple, int] = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, _WEIGHT_LAYERS):
            kernel = module.variables["params"]["kernel"].shape
            macs = math.prod(out.shape) * math.prod(kernel[:-1])
            layers[module.scope.path] = layers.get(module.scope.path, 0) + macs
        return out

    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    return Cost(macs=sum(layers.values()) // shape[0], depth=len(layers))
