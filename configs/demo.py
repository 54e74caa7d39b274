"""Built-in demo: procedurally drawn 48×48 faces, 7 expressions, baseline CNN (~2–3 min on 2 CPU cores).

No files and no network needed. The faces already vary in pose, identity, lighting and noise,
so augmentation is mild here.

Run:  python -m ferjax.main --config=configs/demo.py --workdir=runs/demo
"""

from ferjax import config


def get_config():
    c = config.get_config()
    c.dataset = "demo"
    c.image_size = 48
    c.channels = 1
    c.model = "baseline_cnn"
    c.models.baseline_cnn.conv_features = (32, 64, 128)
    c.models.baseline_cnn.dense_features = (256, 128, 128, 64)
    c.models.baseline_cnn.dropout_rates = (0.1, 0.1, 0.1, 0.2)
    c.batch_size = 32
    c.num_epochs = 4
    c.learning_rate = 2e-3
    c.schedule.name = "cosine"
    c.augment.rotation_degrees = 5.0
    c.augment.shift_fraction = 0.05
    c.augment.zoom_range = 0.05
    return c
