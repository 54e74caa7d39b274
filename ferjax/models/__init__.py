"""Model registry.

A registered factory takes ``(config, num_classes)`` and returns a Flax Linen *backbone*:
``backbone(x, train=bool)`` maps images (B, H, W, C) to an embedding (B, D), or to
``(embedding, aux_logits)`` when it has an auxiliary classifier. The head is added by
:class:`ferjax.models.classifier.Classifier`, so every loss plugs into every model.
Model hyperparameters live in ``config.models.<name>``, declared when registering:
``@MODELS.register(name, **defaults)`` (``MODELS.default_config()`` collects them).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from ferjax.registry import Registry

MODELS: Registry[Callable[[ml_collections.ConfigDict, int], nn.Module]] = Registry("model")

def compute_dtype(config: ml_collections.ConfigDict):
    """The activation dtype selected by ``config.dtype`` ('float32' or 'bfloat16')."""
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.dtype]


def make_backbone(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return MODELS.get(config.model)(config, num_classes)


from ferjax.models import baseline_cnn as _baseline_cnn  # noqa: E402,F401  (registers models)
from ferjax.models import resnet as _resnet  # noqa: E402,F401
from ferjax.models import mobilenet_v2 as _mobilenet_v2  # noqa: E402,F401
from ferjax.models import efficientnet as _efficientnet  # noqa: E402,F401
from ferjax.models import vgg as _vgg  # noqa: E402,F401
from ferjax.models import densenet as _densenet  # noqa: E402,F401
from ferjax.models import emosynthnet as _emosynthnet  # noqa: E402,F401
from ferjax.models import camnet as _camnet  # noqa: E402,F401
