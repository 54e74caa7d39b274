"""The thesis optimizer ("ArminAdam" in the author's code) as optax transformations (SPEC §5).

Per parameter, at step t (counted from 0), with gradient g:

    m  <- b1·m + (1 − b1)·g                      (no bias correction)
    v  <- (1 − b2)²·(v + b2·g²)
    amsgrad=True:   v̂ <- max(v̂, v);  u = m / (√(v̂ / (1 − b2)²) + eps)
    amsgrad=False:                  u = m / (√v + eps)
    update = −lr_t·u,   lr_t = lr(t) / (1 + decay·t)     (Keras-legacy time decay)

In effect the amsgrad denominator is ≈ √b2·max_{s≤t}|g_s|; see docs/optimizer.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class ScaleByArminAdamState(NamedTuple):
    """State of :func:`scale_by_armin_adam`: step count, m, v and (amsgrad only) max v."""

    count: jax.Array  # int32 scalar: number of updates applied so far
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates | None  # None when amsgrad=False


def scale_by_armin_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    amsgrad: bool = True,
) -> optax.GradientTransformation:
    """Rescale updates by the ArminAdam moments (SPEC §5), without the learning rate.

    ``b1``, ``b2`` and ``eps`` may be traced arrays (``optax.inject_hyperparams``);
    ``amsgrad`` is structural (it decides whether the state holds ``nu_max``). Moments are
    kept in each parameter's dtype and the returned updates in each gradient's dtype.
    """

    def init_fn(params):
        zeros = lambda: optax.tree.zeros_like(params)  # noqa: E731
        return ScaleByArminAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(),
            nu=zeros(),
            nu_max=zeros() if amsgrad else None,
        )

    def update_fn(updates, state, params=None):
        del params
        keep = lambda new, old: new.astype(old.dtype)  # noqa: E731
        c = jnp.square(1.0 - b2)  # (1 − b2)²
        mu = jax.tree.map(lambda g, m: keep(b1 * m + (1.0 - b1) * g, m), updates, state.mu)
        # (1 − b2)²·(v + b2·g²) in multiply-add form: XLA then fuses it into the max below
        # instead of recomputing it there (which cost a copy of v and ~1.5× the step time).
        nu = jax.tree.map(lambda g, v: keep(c * v + (c * b2) * jnp.square(g), v), updates, state.nu)
        if amsgrad:
            nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
            scaled = jax.tree.map(
                lambda g, m, vm: keep(m / (jnp.sqrt(vm / c) + eps), g), updates, mu, nu_max
            )
        else:
            nu_max = None
            scaled = jax.tree.map(lambda g, m, v: keep(m / (jnp.sqrt(v) + eps), g), updates, mu, nu)
        count = optax.safe_increment(state.count)
        return scaled, ScaleByArminAdamState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


def time_decay(learning_rate: optax.ScalarOrSchedule, decay: float) -> optax.Schedule:
    """Keras-legacy time decay ``lr(t) / (1 + decay·t)``, t = steps taken so far (SPEC §5)."""
    base = learning_rate if callable(learning_rate) else (lambda count: learning_rate)
    return lambda count: base(count) / (1.0 + decay * count)


def armin_adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    amsgrad: bool = True,
    decay: float = 0.0,
) -> optax.GradientTransformation:
    """The thesis optimizer (SPEC §5): :func:`scale_by_armin_adam` then −lr_t.

    ``learning_rate`` is a float or an optax schedule of the step count; ``decay`` applies
    Keras' ``lr_t = lr(t) / (1 + decay·t)`` on top (0 disables it). The author recommends
    ``b1=0.8``. ``amsgrad=False`` takes steps ≈ 1000× larger than Adam's (docs/optimizer.md).
    """
    return optax.chain(
        scale_by_armin_adam(b1=b1, b2=b2, eps=eps, amsgrad=amsgrad),
        optax.scale_by_learning_rate(time_decay(learning_rate, decay)),
    )
