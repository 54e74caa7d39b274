"""FER-2013 (SPEC §3): train on Training, select on PublicTest, report PrivateTest when present.

Data: $FERJAX_DATA_DIR/fer2013/ (fer2013.csv, or the Kaggle train/ test/ folders).

Run:  python -m ferjax.main --config=configs/fer2013.py --workdir=runs/fer2013
"""

from ferjax import config


def get_config():
    c = config.get_config()
    c.dataset = "fer2013"
    c.image_size = 48
    c.channels = 1
    c.model = "baseline_cnn"
    c.batch_size = 64
    c.num_epochs = 30
    c.learning_rate = 1e-3
    c.augment.rotation_degrees = 20.0
    return c
