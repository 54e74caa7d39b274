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


from ferjax.losses import softmax as _softmax  # noqa: E402,F401  (registers losses)
