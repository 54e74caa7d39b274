"""Backbone + head = classifier; the split lets every head/loss work with every model.

:func:`build_model` is ferjax's one model factory: the trainer, the model table and
:func:`ferjax.run.load_run` all build their models with it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import ml_collections

from ferjax import losses
from ferjax.heads import HEADS, HeadOutput


class ModelOutput(NamedTuple):
    head: HeadOutput
    embedding: jax.Array
    aux_logits: Optional[jax.Array] = None  # auxiliary classifier (training only)


class Classifier(nn.Module):
    backbone: nn.Module
    head: nn.Module
    embedding_dim: int = 0  # > 0: a linear projection to this many dimensions before the head (seed 002 Fig. 4)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> ModelOutput:
        features = self.backbone(x, train=train)
        aux_logits = None
        if isinstance(features, tuple):
            features, aux_logits = features
        if self.embedding_dim:
            features = nn.Dense(self.embedding_dim, name="projection")(features)
        return ModelOutput(head=self.head(features), embedding=features, aux_logits=aux_logits)


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> tuple[Classifier, losses.Objective]:
    """The classifier for ``config`` (``config.model``'s backbone + the head ``config.loss`` needs)
    and its training objective."""
    from ferjax.models import make_backbone  # the package imports this module's siblings

    objective = losses.make_objective(config)
    head = HEADS[objective.head](num_classes=num_classes, **dict(objective.head_kwargs))
    embedding_dim = int(config.embedding_dim)
    return Classifier(backbone=make_backbone(config, num_classes), head=head, embedding_dim=embedding_dim), objective
