"""The trainer's own train step, jitted exactly as ``ferjax.train._train`` jits it, for the gates.

48×48×1, 7 classes, the config defaults (softmax CE, Adam, aux classifier weight 0.3) unless
overridden.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ferjax import optim, parallel, run, train, xla_options
from ferjax.config import get_config
from ferjax.models.classifier import build_model

SIZE, CHANNELS, NUM_CLASSES = 48, 1, 7


def config(model: str, batch: int, **overrides):
    c = get_config()
    c.model = model
    c.image_size, c.channels, c.batch_size = SIZE, CHANNELS, batch
    for key, value in overrides.items():
        c[key] = value
    return c


def jitted(c, mesh):
    """``(model, tx, step)``: the jitted, state-donating step of the model ``c`` selects."""
    model, objective = build_model(c, num_classes=NUM_CLASSES)
    tx = optim.make_optimizer(c, steps_per_epoch=100)
    step = jax.jit(
        train.make_train_step(model, objective, tx, c, class_weights=None),
        in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
        donate_argnums=0,
        compiler_options=xla_options.compiler_options(c),
    )
    return model, tx, step


def abstract_batch(batch: int) -> dict:
    return {
        "image": jax.ShapeDtypeStruct((batch, SIZE, SIZE, CHANNELS), jnp.float32),
        "label": jax.ShapeDtypeStruct((batch,), jnp.int32),
    }


def random_batch(batch: int, mesh, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "image": rng.uniform(-1, 1, (batch, SIZE, SIZE, CHANNELS)).astype(np.float32),
        "label": rng.integers(0, NUM_CLASSES, batch).astype(np.int32),
    }
    return parallel.shard_batch(arrays, mesh)


class Stepper:
    """A live train state and its step: ``call()`` runs one step to completion (state donated)."""

    def __init__(self, c, mesh):
        model, tx, self.step = jitted(c, mesh)
        self.state = jax.device_put(run.init_state(model, tx, c, seed=0), parallel.replicated(mesh))
        self.batch = random_batch(c.batch_size, mesh)

    def call(self) -> None:
        self.state, metrics = self.step(self.state, self.batch)
        jax.block_until_ready(metrics)
