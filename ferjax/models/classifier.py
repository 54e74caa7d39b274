"""Backbone + head = classifier; the split lets every head/loss work with every model."""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax

from ferjax.heads import HeadOutput


class ModelOutput(NamedTuple):
    head: HeadOutput
    embedding: jax.Array
    aux_logits: Optional[jax.Array] = None  # auxiliary classifier (training only)


class Classifier(nn.Module):
    backbone: nn.Module
    head: nn.Module

    def __call__(self, x: jax.Array, train: bool = False) -> ModelOutput:
        features = self.backbone(x, train=train)
        aux_logits = None
        if isinstance(features, tuple):
            features, aux_logits = features
        return ModelOutput(head=self.head(features), embedding=features, aux_logits=aux_logits)
