"""Learning-rate schedules selected by ``config.schedule.name`` (SPEC §5, issue 4).

Every schedule is a function of the optimizer step (or, for ``reduce_on_plateau``, an optax
stateful schedule), so ``optax.inject_hyperparams`` evaluates it each step and the current
value is readable from the optimizer state. ``warmup_epochs > 0`` multiplies any schedule
by a linear ramp ``min(1, (t + 1) / warmup_steps)``. Epoch e = ⌊t / steps_per_epoch⌋.

- ``constant``: lr.
- ``cosine``: cosine decay from lr to ``cosine_final_factor``·lr over ``num_epochs``.
- ``step_halving``: the author's Keras schedule lr·f^⌊1 + 2e/8⌋ = lr·f^⌊1 + e/4⌋ with
  f = ``halving_factor`` (0.5) and 4 = ``halving_epochs``: the first drop applies from
  epoch 0, then once every 4 epochs (docs/optimizer.md explains this reading).
- ``reduce_on_plateau``: ``optax.contrib.reduce_on_plateau`` on the mean training loss of
  each epoch (the trainer passes ``value=loss`` to ``update``); patience counts epochs.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ferjax.errors import ConfigError
from ferjax.registry import Registry

SCHEDULES: Registry[Callable[..., optax.Schedule | optax.schedules.StatefulSchedule]] = Registry(
    "schedule"
)


def default_schedule_config() -> ml_collections.ConfigDict:
    """Schedule keys (``config.schedule``); see the module docstring and docs/optimizer.md."""
    return ml_collections.ConfigDict(
        dict(
            name="constant",
            warmup_epochs=0.0,
            cosine_final_factor=0.0,
            halving_factor=0.5,
            halving_epochs=4.0,
            plateau_factor=0.5,
            plateau_patience=3,
            plateau_rtol=1e-4,
            plateau_cooldown=0,
            plateau_min_scale=0.0,
        )
    )


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """The learning rate of ``config`` as a schedule for ``optax.inject_hyperparams``."""
    if config.learning_rate <= 0:
        raise ConfigError(f"config.learning_rate={config.learning_rate} must be > 0")
    if steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch={steps_per_epoch} must be >= 1")
    sc = config.schedule
    if sc.warmup_epochs < 0:
        raise ConfigError(f"config.schedule.warmup_epochs={sc.warmup_epochs} must be >= 0")
    warmup_steps = round(sc.warmup_epochs * steps_per_epoch)

    def warmed(schedule: optax.Schedule) -> optax.Schedule:
        if warmup_steps == 0:
            return schedule
        return lambda t: schedule(t) * jnp.minimum(1.0, (t + 1) / warmup_steps)

    return SCHEDULES.get(sc.name)(
        lr=config.learning_rate,
        sc=sc,
        total_steps=max(1, config.num_epochs * steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        warmed=warmed,
    )


@SCHEDULES.register("constant")
def _constant(lr, sc, total_steps, steps_per_epoch, warmed):
    return warmed(optax.constant_schedule(lr))


@SCHEDULES.register("cosine")
def _cosine(lr, sc, total_steps, steps_per_epoch, warmed):
    return warmed(optax.cosine_decay_schedule(lr, total_steps, alpha=sc.cosine_final_factor))


@SCHEDULES.register("step_halving")
def _step_halving(lr, sc, total_steps, steps_per_epoch, warmed):
    if sc.halving_epochs <= 0:
        raise ConfigError(f"config.schedule.halving_epochs={sc.halving_epochs} must be > 0")
    return warmed(step_halving(lr, steps_per_epoch, sc.halving_factor, sc.halving_epochs))


def step_halving(
    lr: float, steps_per_epoch: int, factor: float = 0.5, every_epochs: float = 4.0
) -> optax.Schedule:
    """lr·factor^⌊1 + e/every_epochs⌋ at epoch e = ⌊t/steps_per_epoch⌋ (author's ⌊1 + 2e/8⌋)."""

    def schedule(t):
        epoch = t // steps_per_epoch
        return lr * factor ** jnp.floor(1.0 + epoch / every_epochs)

    return schedule


class PlateauScheduleState(NamedTuple):
    count: jax.Array  # int32 step count, for the warm-up
    plateau: optax.contrib.ReduceLROnPlateauState


class PlateauSchedule:
    """``schedule(t)·scale``, scale from ``optax.contrib.reduce_on_plateau`` fed ``value=``.

    An optax stateful schedule: ``optax.inject_hyperparams`` forwards the ``value`` given
    to ``update`` (the training loss of the step). Decisions use the mean over
    ``accumulation_size`` steps (one epoch), so ``patience`` and ``cooldown`` count epochs.
    """

    def __init__(self, schedule: optax.Schedule, **plateau_kwargs):
        self._schedule = schedule
        self._plateau = optax.contrib.reduce_on_plateau(**plateau_kwargs)

    def init(self) -> PlateauScheduleState:
        return PlateauScheduleState(
            count=jnp.zeros([], jnp.int32), plateau=self._plateau.init(jnp.zeros([], jnp.float32))
        )

    def update(self, state: PlateauScheduleState, value=None, **extra_args) -> PlateauScheduleState:
        if value is None:
            raise TypeError(
                "schedule 'reduce_on_plateau' needs the loss: call tx.update(grads, opt_state, "
                "params, value=loss)"
            )
        _, plateau = self._plateau.update(jnp.zeros([], jnp.float32), state.plateau, value=value)
        return PlateauScheduleState(count=optax.safe_increment(state.count), plateau=plateau)

    def __call__(self, state: PlateauScheduleState, **extra_args):
        return self._schedule(state.count) * state.plateau.scale


@SCHEDULES.register("reduce_on_plateau")
def _reduce_on_plateau(lr, sc, total_steps, steps_per_epoch, warmed):
    try:
        return PlateauSchedule(
            warmed(optax.constant_schedule(lr)),
            factor=sc.plateau_factor,
            patience=sc.plateau_patience,
            rtol=sc.plateau_rtol,
            cooldown=sc.plateau_cooldown,
            min_scale=sc.plateau_min_scale,
            accumulation_size=steps_per_epoch,
        )
    except ValueError as e:
        raise ConfigError(f"config.schedule (reduce_on_plateau): {e}") from None
