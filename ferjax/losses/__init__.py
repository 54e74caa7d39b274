"""Loss registry. Losses are pure functions returning per-example losses (SPEC §4).

A registered loss factory takes the run's config and returns an :class:`Objective`:
the head it needs and ``per_example(head_output, labels, step) -> (B,) float32``.
Hyperparameters live in ``config.losses.<name>`` (``LOSSES.default_config()``); for a loss
registered with :func:`register` they are the keyword arguments of its function, with the
function's defaults.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from ferjax.heads import HeadOutput
from ferjax.registry import Registry


class Objective(NamedTuple):
    head: str  # key of ferjax.heads.HEADS
    per_example: Callable[[HeadOutput, jax.Array, jax.Array], jax.Array]
    head_kwargs: dict = {}


LOSSES: Registry[Callable[[ml_collections.ConfigDict], Objective]] = Registry("loss")


def keyword_defaults(fn: Callable) -> dict:
    """``fn``'s parameters that have defaults, with those defaults."""
    parameters = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def objective(config: ml_collections.ConfigDict, *, name: str, loss: Callable, head: str) -> Objective:
    """``loss(x, labels, **config.losses.<name>)`` with x the logits of a ``linear`` head or the
    cosines of a ``cosine`` head, whose scale is the loss's ``s`` (SPEC §4)."""
    hp = config.losses[name].to_dict()
    field = {"linear": "logits", "cosine": "cosine"}[head]

    def per_example(out: HeadOutput, labels: jax.Array, step: jax.Array) -> jax.Array:
        del step
        return loss(getattr(out, field), labels, **hp)

    head_kwargs = {"scale": hp["s"]} if head == "cosine" else {}
    return Objective(head=head, per_example=per_example, head_kwargs=head_kwargs)


def register(name: str, loss: Callable, head: str, aliases: Sequence[str] = ()) -> None:
    """Register ``loss(x, labels, **hparams)`` as ``config.loss=name`` through :func:`objective`;
    its keyword defaults become ``config.losses.<name>``."""
    factory = functools.partial(objective, name=name, loss=loss, head=head)
    LOSSES.register(name, factory, aliases=aliases, **keyword_defaults(loss))


def _dry_run(built: Objective) -> None:
    """Trace ``per_example`` once on abstract inputs (nothing is computed), so that a bad
    hyperparameter raises its one-line ConfigError now rather than inside the training step."""
    f32 = functools.partial(jax.ShapeDtypeStruct, dtype=jnp.float32)
    out = HeadOutput(logits=f32((1, 2)), cosine=f32((1, 2)), feature_norm=f32((1,)), weight_norm=f32((2,)))
    jax.eval_shape(built.per_example, out, jax.ShapeDtypeStruct((1,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32))


def make_objective(config: ml_collections.ConfigDict) -> Objective:
    """The objective of ``config.loss`` with ``config.losses``' hyperparameters, checked."""
    built = LOSSES.get(config.loss)(config)
    _dry_run(built)
    return built


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
