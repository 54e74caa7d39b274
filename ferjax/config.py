"""The shared defaults every run starts from (SPEC §1), and loading a config file.

A config file (``configs/*.py``, or your own anywhere) defines ``get_config()`` and starts
from :func:`get_config` here: ``from ferjax import config; c = config.get_config()``. Because it
imports only the installed package, it runs from any directory, through ``ferjax`` and
``python -m ferjax.main`` alike. Per-component groups (``config.models``, ``config.losses``,
``config.optimizers``, ``config.datasets``) come from the registries, so every registered
component's hyperparameters are present with their defaults and can be overridden.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import ml_collections

from ferjax import data, losses, models, optim
from ferjax.errors import ConfigError


def get_config() -> ml_collections.ConfigDict:
    """Every key a run reads, with its default (the built-in demo set, baseline CNN, softmax, Adam)."""
    c = ml_collections.ConfigDict()
    # What to train.
    c.dataset = "demo"
    c.data_dir = ""  # empty: $FERJAX_DATA_DIR, else ~/ferjax_data
    c.image_size = 48  # images are resized to image_size × image_size
    c.channels = 1  # 1 = grayscale, 3 = RGB (converted on load)
    c.exclude_classes = ""  # comma-separated class names left out of every split (to enroll later: seed 002)
    c.model = "baseline_cnn"
    c.loss = "softmax"
    c.embedding_dim = 0  # >0: a linear projection to this many dimensions before the head (3: unit-sphere figure)
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.weight_decay = 0.0
    c.aux_loss_weight = 0.3  # weight of a model's auxiliary classifier loss; 0 turns it off
    c.class_weighting = False  # inverse-frequency class weights on the loss (imbalanced sets)
    c.mixup_alpha = 0.0  # >0: mixup (Zhang et al. 2018) with λ ~ Beta(α, α) per batch; 0 turns it off
    c.ema_decay = 0.0  # >0 (e.g. 0.999): validate, select and ship an EMA of the weights (ferjax.run.ema_update); 0 turns it off
    # Fine-tuning (ferjax.finetune): start from another run's best checkpoint.
    c.init_from = ""  # a run's workdir; "" = train from scratch
    c.init_head = "reinit"  # or "keep" (same class list only); reinitialised whenever the classes differ
    c.freeze_backbone_epochs = 0  # train only the head for this many first epochs (backbone in inference mode)
    # How long and how.
    c.batch_size = 64  # global batch, sharded over all devices
    c.eval_batch_size = 256
    c.num_epochs = 10
    c.max_steps = -1  # >0: stop after this many steps (as if interrupted); for tests and debugging
    c.seed = 0
    c.dtype = "float32"  # or "bfloat16" (compute dtype; params and losses stay float32)
    # Input pipeline (SPEC §3). Augmentation applies to the training split only.
    c.augment = ml_collections.ConfigDict(
        dict(
            enabled=True,
            flip=True,
            rotation_degrees=15.0,
            shift_fraction=0.1,
            zoom_range=0.1,
            shear_degrees=0.0,
            crop_padding=0,
            erasing_probability=0.0,
        )
    )
    # Logging and checkpoints.
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.keep_checkpoints = 2
    c.progress_bar = True
    # Per-component hyperparameters, declared where each component is registered.
    c.schedule = optim.default_schedule_config()
    c.models = models.MODELS.default_config()
    c.losses = losses.LOSSES.default_config()
    c.optimizers = optim.OPTIMIZERS.default_config()
    c.datasets = data.DATASETS.default_config()
    return c


def load(spec: str | os.PathLike) -> ml_collections.ConfigDict:
    """The config of a config file, written as on the command line: ``path`` or ``path:arg``
    (``configs/ckplus.py:3`` calls ``get_config("3")``)."""
    path, _, arg = str(spec).partition(":")
    if not Path(path).is_file():
        raise ConfigError(f"config file {path} not found")
    return runpy.run_path(path)["get_config"](*([arg] if arg else []))
