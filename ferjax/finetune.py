"""Fine-tuning from another run (issue 13): ``config.init_from``, ``init_head``, ``freeze_backbone_epochs``.

A run with ``init_from = "runs/X"`` starts from X's best checkpoint, read by the one loader
(:func:`ferjax.run.load_run`): every parameter and BatchNorm statistic is copied except the
class-specific ones (:data:`CLASS_SPECIFIC`), which are copied only with ``init_head="keep"``
(same class list required) and otherwise keep this run's own initialisation. The optimizer
state is new. Another model, input size or channel count, or any variable whose name or shape
differs (width, ``embedding_dim``) is a :class:`~ferjax.errors.ConfigError` naming the key.
Only a run's first start initialises from X: a resumed run restores its own checkpoint.

:func:`freeze_backbone` leaves every parameter but the head's unchanged for the first
``freeze_backbone_epochs`` epochs (optax: a masked ``set_to_zero`` while the update count is
below the frozen steps); during those steps the trainer runs the model in inference mode
(``train=False``), so the backbone's BatchNorm statistics stay as loaded and its dropout is off.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

from ferjax import checkpoint, parallel, run
from ferjax.errors import ConfigError, RunError

# Variables that depend on the class list: the head, and an auxiliary classifier (EmoSynthNet's).
CLASS_SPECIFIC = (("head",), ("backbone", "aux"))
TRAINED_WHILE_FROZEN = "head"  # the top-level parameter group that trains during the frozen epochs
_COLLECTIONS = ("params", "batch_stats")


def frozen_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    return int(config.get("freeze_backbone_epochs", 0)) * steps_per_epoch


def freeze_backbone(tx: optax.GradientTransformation, config, steps_per_epoch: int) -> optax.GradientTransformation:
    """``tx`` whose updates of every parameter group but the head are zero for the first
    ``freeze_backbone_epochs`` epochs; ``tx`` itself when nothing is frozen."""
    steps = frozen_steps(config, steps_per_epoch)
    if not steps:
        return tx
    zero_backbone = optax.masked(optax.set_to_zero(), lambda params: {k: k != TRAINED_WHILE_FROZEN for k in params})
    return optax.chain(tx, optax.transforms.conditionally_transform(zero_backbone, lambda count: count < steps))


def check_source(config, class_names) -> None:
    """From run.json alone (before any model is built): the source is a run with the same
    model, channels and image size, and ``init_head="keep"`` has the same class list."""
    where = f"config.init_from={config.init_from}"
    try:
        record = run.read_record(config.init_from)
    except RunError as error:
        raise RunError(f"{where}: {error}") from None
    theirs = record["config"]
    for key in ("model", "channels", "image_size"):
        if theirs.get(key) != config.get(key):
            raise ConfigError(f"{where}: that run has {key}={theirs.get(key)!r}, this config has "
                              f"config.{key}={config.get(key)!r}; fine-tuning needs the same {key}")
    if config.init_head == "keep" and list(record["class_names"]) != list(class_names):
        raise ConfigError(f"config.init_head='keep' needs the same classes as {config.init_from} "
                          f"({', '.join(record['class_names'])}; this run: {', '.join(class_names)}); use init_head='reinit'")


def start_from(config, state: run.TrainState, tx, class_names, mesh) -> tuple[run.TrainState, dict]:
    """``state`` (freshly initialised) with ``config.init_from``'s variables, a new optimizer
    state, and the record of where they came from (for run.json's ``init_from``)."""
    where = f"config.init_from={config.init_from}"
    check_source(config, class_names)
    try:
        source = run.load_run(config.init_from, "best", mesh=mesh)
    except RunError as error:
        raise RunError(f"{where}: {error}") from None
    trained_classes = list(source.record["class_names"])  # without classes enrolled into X since
    same_classes = trained_classes == list(class_names)
    keep = config.init_head == "keep"
    merged = {c: _merge(c, getattr(state, c), source.variables[c], keep, config, source.config, where) for c in _COLLECTIONS}
    new_state = state.replace(params=merged["params"], batch_stats=merged["batch_stats"], opt_state=tx.init(merged["params"]),
                              ema_params=None if state.ema_params is None else jax.tree.map(jnp.copy, merged["params"]))
    origin = {
        "path": str(Path(config.init_from).resolve()),
        "checkpoint": source.checkpoint,
        "step": int(source.step),
        "digests": checkpoint.digests({c: source.variables[c] for c in _COLLECTIONS}),
        "class_names": trained_classes,
        "head": "kept" if keep else "reinitialised" + ("" if same_classes else " (other classes)"),
    }
    return jax.device_put(new_state, parallel.replicated(mesh)), origin


def check_same_origin(record: dict, origin: dict, workdir: Path) -> None:
    """A run restarted before its first checkpoint must find the weights it started from."""
    recorded = record.get("init_from")
    if recorded and recorded.get("digests") != origin["digests"]:
        raise RunError(f"{workdir} started from {recorded['path']} step {recorded['step']}, whose weights have changed "
                       f"since (now step {origin['step']}); use a new --workdir")


def _class_specific(key: tuple[str, ...]) -> bool:
    return any(key[: len(prefix)] == prefix for prefix in CLASS_SPECIFIC)


def _merge(collection: str, own, theirs, keep_head: bool, config, their_config, where: str):
    """This run's variables of ``collection``, with the source run's wherever they transfer."""
    own_flat, their_flat = traverse_util.flatten_dict(own), traverse_util.flatten_dict(theirs)
    for key in sorted(set(their_flat) - set(own_flat)):
        if not _class_specific(key):
            raise _mismatch(where, collection, key, "present there and absent here", config, their_config)
    merged = {}
    for key, mine in own_flat.items():
        transfer = keep_head or not _class_specific(key)
        if not transfer:
            merged[key] = mine
            continue
        other = their_flat.get(key)
        if other is None or (other.shape, other.dtype) != (mine.shape, mine.dtype):
            there = "absent there" if other is None else f"{other.dtype}{list(other.shape)} there"
            raise _mismatch(where, collection, key, f"{there} and {mine.dtype}{list(mine.shape)} here", config, their_config)
        merged[key] = other
    return traverse_util.unflatten_dict(merged)


def _mismatch(where, collection, key, what, config, their_config) -> ConfigError:
    """A one-line error naming the variable and the architecture keys whose values differ."""
    mine, theirs = run.config_dict(config), run.config_dict(their_config)
    keys = [k for k in ("embedding_dim", "loss") if mine.get(k) != theirs.get(k)]
    keys += [f"models.{config.model}.{k}" for k in run.config_differences(
        theirs["models"].get(config.model, {}), mine["models"].get(config.model, {}))]
    differ = f"config keys that differ: {', '.join(keys)}" if keys else "the architectures differ"
    hint = "; with another head use init_head='reinit'" if _class_specific(key) else ""
    return ConfigError(f"{where}: {collection} {'/'.join(key)} is {what} ({differ}){hint}")
