"""Optimizer registry: ``make_optimizer(config, steps_per_epoch) -> optax transformation``.

Optimizers (SPEC §5, seed 003 Table 6.3): ``armin_adam`` (the thesis optimizer), ``adam``,
``adamw``, ``sgd`` (with momentum), ``adadelta``, ``radam``. Their hyperparameters live in
``config.optimizers.<name>``; ``config.learning_rate`` (shaped by ``config.schedule``, see
:mod:`ferjax.optim.schedules`) and ``config.weight_decay`` are shared.

Weight decay: a factory with a ``weight_decay`` parameter applies it itself, decoupled
(``adamw``: p ← p − lr·wd·p); for all others ``make_optimizer`` adds the L2 gradient
``wd·p`` before the optimizer (``optax.add_decayed_weights``), which is PyTorch's
``weight_decay`` for SGD/Adam/RAdam/Adadelta, the setting of seed 003 (1e-4).

The result is wrapped in ``optax.inject_hyperparams`` (float32 hyperparameters; updates and
state keep the parameters' dtypes): the current learning rate is
:func:`current_learning_rate` of the state. The trainer calls, for every optimizer and
schedule, ``tx.update(grads, opt_state, params, value=loss)`` (``value`` is read only by
``reduce_on_plateau``).
"""

from __future__ import annotations

import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ferjax.errors import ConfigError
from ferjax.optim.armin_adam import ScaleByArminAdamState, armin_adam, scale_by_armin_adam
from ferjax.optim.schedules import default_schedule_config, make_schedule
from ferjax.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "ScaleByArminAdamState",
    "armin_adam",
    "current_learning_rate",
    "default_schedule_config",
    "make_optimizer",
    "scale_by_armin_adam",
]

OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")


def _with_l2_penalty(factory: Callable[..., optax.GradientTransformation]):
    """``factory`` preceded by ``add_decayed_weights(weight_decay)`` (coupled L2 decay).

    The wrapper keeps ``factory``'s named parameters (plus ``weight_decay``) in its
    signature, which ``optax.inject_hyperparams`` reads to inject each of them.
    """

    def build(weight_decay, **hparams):
        return optax.chain(optax.add_decayed_weights(weight_decay), factory(**hparams))

    signature = inspect.signature(factory)
    extra = inspect.Parameter("weight_decay", inspect.Parameter.KEYWORD_ONLY)
    build.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return build


def _keep_dtypes(tx: optax.GradientTransformationExtraArgs) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose updates have the gradients' dtypes and whose state keeps its initial dtypes.

    Injected hyperparameters are float32 arrays, so inside optax's optimizers they promote
    bfloat16 gradients and moments to float32: the state's dtypes would change after the first
    step (recompiling the step) and updates would not match their parameters' dtypes.
    """

    def update(updates, state, params=None, **extra_args):
        new_updates, new_state = tx.update(updates, state, params, **extra_args)
        cast = lambda new, old: new.astype(old.dtype)  # noqa: E731
        return jax.tree.map(cast, new_updates, updates), jax.tree.map(cast, new_state, state)

    return optax.GradientTransformationExtraArgs(tx.init, update)


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformationExtraArgs:
    """The configured optimizer, schedule and weight decay, under ``inject_hyperparams``.

    Hyperparameters are injected as float32 whatever the parameters' dtype (optax would take
    bfloat16 for bfloat16 parameters, where b2 = 0.999 rounds to 1 and Adam's update is NaN).
    """
    factory = OPTIMIZERS.get(config.optimizer)
    hparams = dict(config.optimizers.get(config.optimizer, {}))
    if config.weight_decay < 0:
        raise ConfigError(f"config.weight_decay={config.weight_decay} must be >= 0")
    if "weight_decay" in inspect.signature(factory).parameters:
        hparams["weight_decay"] = config.weight_decay
    elif config.weight_decay > 0:
        factory = _with_l2_penalty(factory)
        hparams["weight_decay"] = config.weight_decay
    learning_rate = make_schedule(config, steps_per_epoch)
    injected = optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)
    return _keep_dtypes(injected(learning_rate=learning_rate, **hparams))


def current_learning_rate(opt_state):
    """The learning rate used by the latest update (schedule value), or None if not injected.
    The injected state may be nested (a frozen backbone chains a mask after it: :mod:`ferjax.finetune`)."""
    hyperparams = optax.tree_utils.tree_get(opt_state, "hyperparams")
    if hyperparams is None or "learning_rate" not in hyperparams:
        return None
    return hyperparams["learning_rate"]


@OPTIMIZERS.register("armin_adam", b1=0.9, b2=0.999, eps=1e-8, amsgrad=True, decay=0.0)
def _armin_adam(learning_rate, b1, b2, eps, amsgrad, decay):
    return armin_adam(learning_rate, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad, decay=decay)


@OPTIMIZERS.register("adam", b1=0.9, b2=0.999, eps=1e-8)
def _adam(learning_rate, b1, b2, eps):
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


@OPTIMIZERS.register("adamw", b1=0.9, b2=0.999, eps=1e-8)
def _adamw(learning_rate, b1, b2, eps, weight_decay):
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd", momentum=0.9, nesterov=False)
def _sgd(learning_rate, momentum, nesterov):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register("adadelta", rho=0.9, eps=1e-6)
def _adadelta(learning_rate, rho, eps):
    return optax.adadelta(learning_rate, rho=rho, eps=eps)


@OPTIMIZERS.register("radam", b1=0.9, b2=0.999, eps=1e-8, threshold=5.0)
def _radam(learning_rate, b1, b2, eps, threshold):
    return optax.radam(learning_rate, b1=b1, b2=b2, eps=eps, threshold=threshold)
