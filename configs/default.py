"""Shared defaults for every ferjax run (SPEC §1). Not run directly; other configs start here.

Run:  python -m ferjax.main --config=configs/default.py --workdir=runs/default
"""

import ml_collections

from ferjax import data, losses, models, optim
from ferjax.datasets import register_all as _register_datasets


def get_config() -> ml_collections.ConfigDict:
    _register_datasets()
    c = ml_collections.ConfigDict()
    # What to train.
    c.dataset = "demo"
    c.data_dir = ""  # empty: $FERJAX_DATA_DIR, else ~/ferjax_data
    c.image_size = 48  # images are resized to image_size × image_size
    c.channels = 1  # 1 = grayscale, 3 = RGB (converted on load)
    c.model = "baseline_cnn"
    c.loss = "softmax"
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.weight_decay = 0.0
    c.aux_loss_weight = 0.3  # weight of a model's auxiliary classifier loss; 0 turns it off
    c.class_weighting = False  # inverse-frequency class weights on the loss (imbalanced sets)
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
    # Per-component hyperparameters, declared by each registered component.
    c.schedule = optim.default_schedule_config()
    c.models = models.default_config()
    c.losses = losses.default_config()
    c.optimizers = optim.default_config()
    c.datasets = data.default_config()
    return c
