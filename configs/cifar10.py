"""CIFAR-10 (SPEC §3), the thesis' generic check: 32×32×3, 10 classes, reported on test.

Data: $FERJAX_DATA_DIR/cifar10/cifar-10-batches-py (the python pickle release).

Run:  python -m ferjax.main --config=configs/cifar10.py --workdir=runs/cifar10
"""

from ferjax import config


def get_config():
    c = config.get_config()
    c.dataset = "cifar10"
    c.image_size = 32
    c.channels = 3
    c.model = "resnet18"
    c.batch_size = 128
    c.num_epochs = 50
    c.learning_rate = 1e-3
    c.augment.rotation_degrees = 0.0
    c.augment.zoom_range = 0.0
    c.augment.shift_fraction = 0.0
    c.augment.crop_padding = 4
    return c
