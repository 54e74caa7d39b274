"""A run on disk and the one loader for it (SPEC §1, §10): ``run.json``, the train state, ``load_run``.

The trainer writes ``run.json`` when a run starts: the full config, the class names, the
dataset, the input spec (image size, channels, normalisation) and the ferjax version.
:func:`load_run` reads it back with a checkpoint's ``params`` (the average of the weights for a
run with ``config.ema_decay`` > 0: what it validated) and ``batch_stats`` (no dataset, no
optimizer state, any device count) and returns a :class:`TrainedModel`, which prepares
images with the training pipeline's own functions (:func:`ferjax.data.preprocess.prepare`,
:func:`~ferjax.data.preprocess.normalize`) and runs the jitted model on batches sharded over
every local device.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

import ferjax
from ferjax import config as ferjax_config
from ferjax import enrollment as enrolled_classes
from ferjax import files, losses, models, parallel, xla_options
from ferjax.checkpoint import Checkpoints, Damaged, abstract_like
from ferjax.data import preprocess, tta
from ferjax.errors import RunError
from ferjax.models.classifier import build_model

RUN_FILE = "run.json"

# Config keys that may differ when a run is resumed: they change how a run is watched or
# stored, never its result (the data order, dropout keys and updates are unchanged).
HARMLESS_KEYS = frozenset(
    {"progress_bar", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "max_steps", "eval_batch_size", "data_dir"}
)


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: number of updates applied
    params: Any
    batch_stats: Any
    opt_state: Any
    ema_params: Any = None  # config.ema_decay > 0: the moving average of params (:func:`ema_update`)


def ema_update(ema_params, params, step: jax.Array, decay: float):
    """The exponential moving average of the weights after the update that made ``step`` updates.

    ema ← d·ema + (1 − d)·params with d = min(decay, (1 + t)/(10 + t)), t = step − 1: the
    warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=t)``, so that a short run's
    average is not dominated by its random initialisation (d = 0.1 at the first update, 0.5
    at the ninth, ``decay`` after ≈ 9/(1 − decay) updates). BatchNorm statistics are not
    averaged: the average is evaluated with the running statistics, as Keras' ``use_ema`` does.
    """
    t = (step - 1).astype(jnp.float32)
    d = jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))
    return optax.incremental_update(params, ema_params, step_size=1.0 - d)


def keeps_average(config) -> bool:
    """Whether a run with ``config`` keeps an average of its weights (``config.ema_decay`` > 0;
    an older run.json without the key: no)."""
    return config.get("ema_decay", 0.0) > 0


def evaluated_variables(state: TrainState) -> dict:
    """The variables a run validates, selects and ships: the EMA of the weights when it keeps one."""
    params = state.params if state.ema_params is None else state.ema_params
    return {"params": params, "batch_stats": state.batch_stats}


def init_variables(model: nn.Module, config: ml_collections.ConfigDict, seed: int) -> dict:
    shape = (1, config.image_size, config.image_size, config.channels)
    variables = model.init(jax.random.key(seed), jnp.zeros(shape, jnp.float32), train=False)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def init_state(model: nn.Module, tx: optax.GradientTransformation, config, seed: int) -> TrainState:
    variables = init_variables(model, config, seed)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        ema_params=jax.tree.map(jnp.copy, variables["params"]) if keeps_average(config) else None,  # own buffers: the step donates both
    )


# ---------------------------------------------------------------------------- run.json


def config_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON values (tuples become lists), as run.json stores it."""
    return json.loads(config.to_json_best_effort())


def make_record(config: ml_collections.ConfigDict, dataset: str, class_names: Sequence[str]) -> dict:
    return {
        "ferjax_version": ferjax.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "class_names": list(class_names),
        "model": config.model,
        "loss": config.loss,
        "input": {
            "image_size": int(config.image_size),
            "channels": int(config.channels),
            "pixels": "uint8 (0-255); grayscale <-> RGB by ITU-R BT.601 luma; bilinear resize",
            "normalisation": preprocess.NORMALISATION,
        },
        "config": config_dict(config),
    }


def write_record(workdir: Path, record: dict) -> None:
    """Write run.json atomically (never half-written)."""
    files.write_atomically(Path(workdir) / RUN_FILE, json.dumps(record, indent=2) + "\n")


def read_record(workdir: str | Path) -> dict:
    path = Path(workdir) / RUN_FILE
    if not path.is_file():
        what = "no such directory" if not Path(workdir).exists() else f"no {RUN_FILE}"
        raise RunError(f"{workdir}: not a ferjax run ({what}); train one with python -m ferjax.main --workdir={workdir}")
    try:
        record = json.loads(path.read_text())
        record["config"], record["class_names"]  # noqa: B018 - the keys every reader needs
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"{path}: unreadable run file ({type(error).__name__}: {error})") from None
    return record


def config_from_record(record: dict) -> ml_collections.ConfigDict:
    """run.json's config as a locked ConfigDict (JSON lists back to tuples, as configs write them).

    A key the record lacks (an option added to ferjax after the run started) takes its default
    from :func:`ferjax.config.get_config`: new options default to the behaviour before them.
    """

    def tuples(value):
        if isinstance(value, dict):
            return {k: tuples(v) for k, v in value.items()}
        if isinstance(value, list):
            return tuple(tuples(v) for v in value)
        return value

    def filled(recorded: dict, defaults: dict) -> dict:
        out = {k: v for k, v in defaults.items() if k not in recorded}
        for key, value in recorded.items():
            default = defaults.get(key)
            out[key] = filled(value, default) if isinstance(value, dict) and isinstance(default, dict) else value
        return out

    config = ml_collections.ConfigDict(filled(tuples(record["config"]), tuples(ferjax_config.get_config().to_dict())))
    config.lock()
    return config


def config_differences(old: dict, new: dict, defaults: dict | None = None, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, except :data:`HARMLESS_KEYS`.

    A key missing from ``old`` (an option added to ferjax after that run started) counts as
    equal when ``new`` holds its default from ``defaults`` (new options default to the old
    behaviour).
    """
    keys = []
    defaults = defaults or {}
    for key in sorted(set(old) | set(new)):
        if not prefix and key in HARMLESS_KEYS:
            continue
        a, b, d = old.get(key, _ABSENT), new.get(key, _ABSENT), defaults.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, d if isinstance(d, dict) else {}, f"{prefix}{key}.")
        elif a != b and not (a is _ABSENT and b == d):
            keys.append(f"{prefix}{key}")
    return keys


_ABSENT = object()


# ---------------------------------------------------------------------------- loading


@dataclasses.dataclass
class TrainedModel:
    """A trained classifier: ``probabilities``, ``logits`` and ``embeddings`` of raw images.

    Images: one array (N, H, W) gray or (N, H, W, 1|3), or a sequence of (H, W[, C]) arrays
    of any sizes; uint8, or numbers on the 0–255 scale. They are prepared exactly as the
    run's evaluation pipeline prepares its split (channels, size, normalisation).
    """

    workdir: Path
    record: dict
    config: ml_collections.ConfigDict
    class_names: list[str]
    step: int
    checkpoint: str  # "best" | "latest": where the weights came from
    model: nn.Module
    variables: dict
    mesh: jax.sharding.Mesh
    batch_size: int  # images per jitted call (a multiple of the device count)
    enrollment: Any = None  # ferjax.enrollment.Enrollment: classes added after training (seed 002)
    head_scale: float = 0.0  # the cosine head's s, when classes are enrolled

    def __post_init__(self):
        def forward(variables, images):
            out = self.model.apply(variables, images, train=False)
            return out.head.logits.astype(jnp.float32), out.embedding.astype(jnp.float32)

        sharded = parallel.data_sharded(self.mesh)
        self._forward = jax.jit(forward, in_shardings=(parallel.replicated(self.mesh), sharded), out_shardings=sharded,
                                compiler_options=xla_options.compiler_options(self.config))

    @property
    def base_class_names(self) -> list[str]:
        """The classes the run was trained on (``class_names`` adds enrolled ones and "unknown")."""
        return list(self.record["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def channels(self) -> int:
        return int(self.config.channels)

    @property
    def weights(self) -> str:
        """Which weights these are, for reports: ``"best (step 900)"``, with ``", average of the
        weights (ema_decay=0.999)"`` inside the brackets for a run that kept one."""
        average = f", average of the weights (ema_decay={self.config.ema_decay:g})" if keeps_average(self.config) else ""
        return f"{self.checkpoint} (step {self.step}{average})"

    def prepare(self, images) -> np.ndarray:
        """Raw images → the model's uint8 ``(N, S, S, C)`` (not yet normalised)."""
        if isinstance(images, np.ndarray) and images.ndim in (3, 4):
            if images.ndim == 4 and images.shape[-1] not in (1, 3):
                raise ValueError(f"images must be (N, H, W) or (N, H, W, 1|3), got shape {images.shape}")
            items: Sequence = list(images)
        elif isinstance(images, np.ndarray):
            raise ValueError(f"images must be (N, H, W) or (N, H, W, 1|3), got shape {images.shape}")
        else:
            items = images
        out = np.zeros((len(items), self.image_size, self.image_size, self.channels), np.uint8)
        for i, image in enumerate(items):
            out[i] = preprocess.prepare(image, self.image_size, self.channels)
        return out

    def logits_of_batch(self, inputs: np.ndarray) -> np.ndarray:
        """Normalised float32 inputs ``(n, S, S, C)`` → un-margined logits ``(n, classes)`` (host)."""
        return self._run(inputs)[0]

    def _run(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, embeddings = [], []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start : start + self.batch_size]
            padded = np.zeros((self.batch_size, *chunk.shape[1:]), np.float32)
            padded[: len(chunk)] = chunk
            z, e = self._forward(self.variables, jax.device_put(padded, parallel.data_sharded(self.mesh)))
            logits.append(np.asarray(z)[: len(chunk)])
            embeddings.append(np.asarray(e)[: len(chunk)])
        if not logits:
            return np.zeros((0, len(self.class_names)), np.float32), np.zeros((0, 0), np.float32)
        logits, embeddings = np.concatenate(logits), np.concatenate(embeddings)
        if self.enrollment is not None:
            logits = self.enrollment.logits(logits, embeddings, self.head_scale)
        return logits, embeddings

    def logits(self, images) -> np.ndarray:
        """Un-margined logits ``(N, classes)`` (SPEC §4: margins apply only in training); with enrolled
        classes, over ``class_names`` = trained + enrolled + "unknown" (:mod:`ferjax.enrollment`)."""
        return self._run(preprocess.normalize(self.prepare(images)))[0]

    def embeddings(self, images) -> np.ndarray:
        """The backbone's embedding ``(N, D)`` (the head's input)."""
        return self._run(preprocess.normalize(self.prepare(images)))[1]

    def probabilities(self, images, tta_mode: str = "none", tta_samples: int = 8, seed: int = 0) -> np.ndarray:
        """Class probabilities ``(N, classes)``, averaged over the TTA views (:mod:`ferjax.data.tta`)."""
        prepared = self.prepare(images)
        index = np.arange(len(prepared))
        views = tta.views(tta_mode, self.config, tta_samples, seed)
        total = np.zeros((len(prepared), len(self.class_names)), np.float64)
        for view in views:
            total += softmax(self.logits_of_batch(view(prepared, index)))
        return total / len(views)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 on the host."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def load_run(
    workdir: str | Path, checkpoint: str | int = "best", *, batch_size: int = 256, mesh: jax.sharding.Mesh | None = None
) -> TrainedModel:
    """The trained model of ``workdir`` at ``checkpoint``: "best" (on validation; the last
    checkpoint when the run had no validation split), "latest", or a step number; with the
    classes enrolled into the run (``enrolled.json``, :mod:`ferjax.enrollment`), if any."""
    workdir = Path(workdir)
    record = read_record(workdir)
    config = config_from_record(record)
    run_file = workdir / RUN_FILE
    for kind, registry, name in (("model", models.MODELS, config.get("model")), ("loss", losses.LOSSES, config.get("loss"))):
        if name not in registry:
            raise RunError(f"{run_file}: unknown {kind} {name!r} (this ferjax has: {', '.join(registry.names())})")
    class_names = list(record["class_names"])
    model, _ = build_model(config, len(class_names))
    mesh = mesh or parallel.make_mesh()
    batch_size = math.ceil(batch_size / mesh.size) * mesh.size
    abstract = jax.eval_shape(lambda: init_variables(model, config, 0))
    abstract = abstract_like(abstract, parallel.replicated(mesh))

    checkpoints = Checkpoints(workdir, read_only=True)
    try:
        kind, step = _choose_checkpoint(checkpoints, checkpoint, workdir)
        try:
            params_from = "ema_params" if keeps_average(config) else "params"  # what the run validated
            variables = checkpoints.restore_variables(step, abstract, kind, params_from)
        except Damaged as damage:
            raise RunError(f"{checkpoints.directory(kind) / str(step)}: damaged checkpoint ({damage})") from None
    finally:
        checkpoints.close()
    enrolled, scale = enrolled_classes.read(workdir), 0.0
    if enrolled is not None:
        _, scale = enrolled_classes.cosine_head(config, variables["params"], workdir)
        class_names += [*enrolled.names, enrolled_classes.UNKNOWN]
    return TrainedModel(workdir, record, config, class_names, step, kind, model, variables, mesh, batch_size, enrolled, scale)


def _choose_checkpoint(checkpoints: Checkpoints, which: str | int, workdir: Path) -> tuple[str, int]:
    latest, best = checkpoints.steps("latest"), checkpoints.steps("best")
    if not latest and not best:
        raise RunError(f"{workdir}: no checkpoint yet in {checkpoints.root}")
    if which == "best":
        return ("best", best[-1]) if best else ("latest", latest[-1])
    if which == "latest":
        if not latest:
            raise RunError(f"{workdir}: no checkpoint in {checkpoints.directory('latest')}")
        return "latest", latest[-1]
    try:
        step = int(which)
    except (TypeError, ValueError):
        raise RunError(f"checkpoint must be 'best', 'latest' or a step number, got {which!r}") from None
    for kind, steps in (("latest", latest), ("best", best)):
        if step in steps:
            return kind, step
    raise RunError(f"{workdir}: no checkpoint at step {step} (latest: {latest}, best: {best})")
