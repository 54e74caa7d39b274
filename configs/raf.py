"""RAF-DB basic (SPEC §3): 7 classes, 100×100 aligned RGB faces, train 12,271 / test 3,068.

RAF-DB has no validation split: a deterministic held-out slice of train is used for model
selection (see docs/datasets.md). Data: $FERJAX_DATA_DIR/rafdb/ (manual download).

Run:  python -m ferjax.main --config=configs/raf.py --workdir=runs/raf
"""

from ferjax import config


def get_config():
    c = config.get_config()
    c.dataset = "rafdb"
    c.image_size = 100
    c.channels = 3
    c.model = "resnet18"
    c.batch_size = 64
    c.num_epochs = 40
    c.learning_rate = 1e-3
    c.class_weighting = True
    return c
