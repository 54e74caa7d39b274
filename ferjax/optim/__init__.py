"""Optimizer registry: ``make_optimizer(config, steps_per_epoch) -> optax.GradientTransformation``.

Optimizer hyperparameters live in ``config.optimizers.<name>`` (defaults from
:func:`default_config`); ``config.learning_rate`` and ``config.weight_decay`` are shared.
The returned transformation is wrapped in ``optax.inject_hyperparams`` so the current
learning rate can be read from the state (:func:`current_learning_rate`) and logged.
"""

from __future__ import annotations

from typing import Callable

import ml_collections
import optax

from ferjax.registry import Registry

OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")

_DEFAULTS: dict[str, dict] = {}


def register_defaults(name: str, **hparams) -> None:
    _DEFAULTS[name] = hparams


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({name: dict(h) for name, h in _DEFAULTS.items()})


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
    factory = OPTIMIZERS.get(config.optimizer)
    hp = dict(config.optimizers.get(config.optimizer, {}))
    return optax.inject_hyperparams(factory)(learning_rate=config.learning_rate, **hp)


def current_learning_rate(opt_state) -> float | None:
    hyperparams = getattr(opt_state, "hyperparams", None)
    if hyperparams is None or "learning_rate" not in hyperparams:
        return None
    return hyperparams["learning_rate"]


register_defaults("adam", b1=0.9, b2=0.999, eps=1e-8)
register_defaults("sgd", momentum=0.9, nesterov=False)


@OPTIMIZERS.register("adam")
def _adam(learning_rate, b1, b2, eps):
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


@OPTIMIZERS.register("sgd")
def _sgd(learning_rate, momentum, nesterov):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def default_schedule_config() -> ml_collections.ConfigDict:
    """Learning-rate schedule keys (config.schedule)."""
    return ml_collections.ConfigDict(dict(name="constant"))
