"""Checks a training run makes before any work starts (SPEC §9): one-line errors naming the key.

Everything here fails in seconds, before compiling or reading data, so that a bad value
never costs a training run or surfaces as a traceback after it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import jax
import ml_collections

from ferjax import parallel
from ferjax.errors import ConfigError, FerjaxError

T = TypeVar("T")

_POSITIVE_INTS = ("batch_size", "eval_batch_size", "num_epochs", "log_every_steps", "checkpoint_every_steps",
                  "keep_checkpoints", "image_size")


def check_training_config(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
    """Top-level values: positive counts, a known dtype and channel count, device-divisible batches."""
    for key in _POSITIVE_INTS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{key}={value!r} must be a positive integer")
    if config.channels not in (1, 3):
        raise ConfigError(f"config.channels={config.channels!r}; valid: 1 (grayscale), 3 (RGB)")
    if config.dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"config.dtype={config.dtype!r}; valid: float32, bfloat16")
    for key in ("batch_size", "eval_batch_size"):
        parallel.check_batch_divisible(config[key], mesh, key)
    alpha = config.mixup_alpha
    if not alpha >= 0:
        raise ConfigError(f"config.mixup_alpha={alpha!r} must be a number >= 0 (0 turns mixup off)")
    decay = config.get("ema_decay", 0.0)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ConfigError(f"config.ema_decay={decay!r} must be a number in [0, 1) (0 turns the weight average off)")
    if config.get("init_head", "reinit") not in ("reinit", "keep"):
        raise ConfigError(f"config.init_head={config.init_head!r}; valid: reinit, keep")
    freeze = config.get("freeze_backbone_epochs", 0)
    if isinstance(freeze, bool) or not isinstance(freeze, int) or freeze < 0:
        raise ConfigError(f"config.freeze_backbone_epochs={freeze!r} must be an integer >= 0")
    if freeze and not config.get("init_from"):
        raise ConfigError("config.freeze_backbone_epochs needs config.init_from (a run to take the backbone from)")


def prepare_workdir(workdir: Path) -> None:
    """Create ``workdir`` and check that it is a writable directory."""
    if workdir.exists() and not workdir.is_dir():
        raise FerjaxError(f"--workdir {workdir} exists and is not a directory")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise FerjaxError(f"--workdir {workdir} is not writable ({error.strerror or error})") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise FerjaxError(f"--workdir {workdir} is not writable")


def built(make: Callable[[], T], config: ml_collections.ConfigDict) -> T:
    """``make()`` (building and initialising the model); a bad hyperparameter becomes a ConfigError."""
    try:
        return make()
    except (TypeError, ValueError, IndexError, KeyError) as error:
        message = " ".join(str(error).split())[:300]
        raise ConfigError(
            f"cannot build model {config.model!r} with config.models.{config.model} and "
            f"image_size={config.image_size}, channels={config.channels}: {type(error).__name__}: {message}"
        ) from None
