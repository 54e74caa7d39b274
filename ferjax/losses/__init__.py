"""Loss registry. Losses are pure functions returning per-example losses (SPEC §4).

A registered loss factory takes the run's config and returns an :class:`Objective`:
the head it needs and ``per_example(head_output, labels, step) -> (B,) float32``.
Hyperparameters live in ``config.losses.<name>`` (defaults from :func:`default_config`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import ml_collections

from ferjax.heads import HeadOutput
from ferjax.registry import Registry


class Objective(NamedTuple):
    head: str  # key of ferjax.heads.HEADS
    per_example: Callable[[HeadOutput, jax.Array, jax.Array], jax.Array]
    head_kwargs: dict = {}


LOSSES: Registry[Callable[[ml_collections.ConfigDict], Objective]] = Registry("loss")

_DEFAULTS: dict[str, dict] = {}


def register_defaults(name: str, **hparams) -> None:
    """Declare a loss's hyperparameters and their defaults (exposed as config.losses.<name>)."""
    _DEFAULTS[name] = hparams


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({name: dict(h) for name, h in _DEFAULTS.items()})


def make_objective(config: ml_collections.ConfigDict) -> Objective:
    return LOSSES.get(config.loss)(config)


# Importing the modules registers their losses; the plain functions are public API.
from ferjax.losses.additive import (  # noqa: E402
    amsoftmax_loss,
    arcface_loss,
    dam_softmax_loss,
    dams_loss,
    soft_margin_loss,
)
from ferjax.losses.angular import annealed_lambda, asoftmax_loss, lsoftmax_loss, psi  # noqa: E402
from ferjax.losses.focal import focal_loss  # noqa: E402
from ferjax.losses.mam import mam_softmax_loss  # noqa: E402
from ferjax.losses.sce import sce_loss  # noqa: E402
from ferjax.losses.softmax import softmax_cross_entropy  # noqa: E402

cosface_loss = lmcl_loss = amsoftmax_loss
