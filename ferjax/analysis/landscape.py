"""The training loss around trained weights (Li et al., NeurIPS 2018; seed 001 "Loss landscape", "Contour Loss").

f(α, β) = L(θ* + α·δ + β·η) for two random Gaussian directions δ, η, each *filter-normalised*
(Li et al. §4, d_ij ← d_ij / ‖d_ij‖ · ‖θ_ij‖): every filter of a direction — a kernel's slice along
its output axis; a dense layer's column is a 1×1 filter — is scaled to the norm of the same filter
of θ*. One-dimensional parameters (biases, BatchNorm's scale and offset) get a zero direction, the
setting of the paper's published figures (``--xignore biasbn``), and BatchNorm normalises with its
running statistics.

L is the trainer's own loss (:func:`ferjax.train.make_train_step`: the objective, class weights,
the sown regularisers; never mixup) with the model in evaluation mode, on a fixed subset of the training split
and averaged over equal batches of it. Grid points are evaluated jitted, ``vmap``-ped in chunks
that are sharded over the run's devices. The 1-D curve is f(α, 0) on a finer grid.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ferjax import losses, parallel, train, xla_options
from ferjax.errors import ConfigError
from ferjax.run import TrainedModel, TrainState

# The train step's update is discarded (only its loss is read), so XLA drops the backward pass.
_NO_UPDATE = optax.with_extra_args_support(optax.set_to_zero())


class Landscape(NamedTuple):
    alphas: np.ndarray  # (R,) coordinates along δ (and η: the grid is square)
    surface: np.ndarray  # (R, R) f(α_j, β_i) at [i, j]
    line_alphas: np.ndarray  # (L,)
    line: np.ndarray  # (L,) f(α, 0)
    examples: int  # training examples the loss is averaged over


class _EvalMode:
    """``model.apply`` with BatchNorm on running statistics and dropout off, whatever ``train`` says."""

    def __init__(self, model):
        self.model = model

    def apply(self, variables, *args, **kwargs):
        return self.model.apply(variables, *args, **{**kwargs, "train": False})


def filter_normalized_direction(params, rng: np.random.Generator):
    """A random Gaussian direction shaped like ``params`` (host arrays), filter-normalised; zero for 1-D parameters."""

    def one(weight):
        weight = np.asarray(weight, np.float32)
        if weight.ndim < 2:
            return np.zeros_like(weight)
        d = rng.standard_normal(weight.shape, dtype=np.float32)
        norm = lambda a: np.sqrt(np.sum(np.square(a), axis=tuple(range(a.ndim - 1)), keepdims=True))  # noqa: E731 - per filter
        return d * norm(weight) / (norm(d) + 1e-10)

    return jax.tree.map(one, params)


def grid(resolution: int, span: float, what: str = "resolution") -> np.ndarray:
    """``resolution`` coordinates over [-span, span]; odd, so that 0 (the trained weights) is one of them."""
    if resolution < 1 or resolution % 2 == 0:
        raise ConfigError(f"{what}={resolution} must be odd and positive, so that the grid holds the trained weights")
    return np.linspace(-span, span, resolution)


def loss_landscape(trained: TrainedModel, images: np.ndarray, labels: np.ndarray, class_weights: np.ndarray | None = None,
                   resolution: int = 21, line_resolution: int = 51, span: float = 1.0, seed: int = 0,
                   batch_size: int = 128, chunk: int = 8) -> Landscape:
    """f on an R×R grid over [-span, span]² and on a line; ``images`` are normalised float32 inputs.

    The examples are split into equal batches of ``batch_size`` (the remainder is dropped);
    ``chunk`` grid points are evaluated per call (rounded up to a multiple of the device count).
    """
    alphas = grid(resolution, span, "resolution")
    line_alphas = grid(line_resolution, span, "line_resolution")
    batch_size = min(batch_size, len(images))
    n_batches = len(images) // max(batch_size, 1)
    if n_batches == 0:
        raise ConfigError("the loss landscape needs at least one training example")
    mesh = trained.mesh
    chunk = -(-chunk // mesh.size) * mesh.size
    params, batch_stats = trained.variables["params"], trained.variables["batch_stats"]
    rng = np.random.default_rng(seed)
    directions = [filter_normalized_direction(params, rng) for _ in range(2)]
    objective = losses.make_objective(trained.config)
    unmixed = ml_collections.ConfigDict(trained.config.to_dict())  # f is the loss of the examples themselves
    unmixed.mixup_alpha = 0.0
    step = train.make_train_step(_EvalMode(trained.model), objective, _NO_UPDATE, unmixed, class_weights)

    def loss_at(coords, params, batch_stats, directions, images, labels):
        moved = jax.tree.map(lambda w, d1, d2: w + coords[0] * d1 + coords[1] * d2, params, *directions)
        state = TrainState(step=jnp.asarray(trained.step, jnp.int32), params=moved, batch_stats=batch_stats,
                           opt_state=_NO_UPDATE.init(moved))
        return step(state, {"image": images, "label": labels})[1]["loss"]

    replicated, sharded = parallel.replicated(mesh), parallel.data_sharded(mesh)
    loss_of = jax.jit(jax.vmap(loss_at, in_axes=(0, None, None, None, None, None)),
                      in_shardings=(sharded, *[replicated] * 5), out_shardings=sharded,
                      compiler_options=xla_options.compiler_options(trained.config))
    directions = jax.device_put(directions, replicated)
    batches = [jax.device_put((np.asarray(images[i * batch_size : (i + 1) * batch_size], np.float32),
                               np.asarray(labels[i * batch_size : (i + 1) * batch_size], np.int32)), replicated)
               for i in range(n_batches)]

    def evaluate(coords: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(coords), chunk):
            rows = coords[start : start + chunk]
            part = np.zeros((chunk, 2), np.float32)
            part[: len(rows)] = rows
            total = sum(loss_of(part, params, batch_stats, directions, x, y) for x, y in batches)
            out.append(np.asarray(total, np.float64)[: len(rows)] / n_batches)
        return np.concatenate(out)

    beta, alpha = np.meshgrid(alphas, alphas, indexing="ij")
    surface = evaluate(np.stack([alpha.ravel(), beta.ravel()], axis=1)).reshape(resolution, resolution)
    line = evaluate(np.stack([line_alphas, np.zeros_like(line_alphas)], axis=1))
    return Landscape(alphas, surface, line_alphas, line, n_batches * batch_size)

