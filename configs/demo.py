"""Built-in demo: procedurally drawn 48×48 faces, 7 expressions, baseline CNN (~2 min on 2 CPU cores).

No files and no network needed.

Run:  python -m ferjax.main --config=configs/demo.py --workdir=runs/demo
"""

from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "demo"
    c.image_size = 48
    c.channels = 1
    c.model = "baseline_cnn"
    c.models.baseline_cnn.conv_features = (32, 64, 128)
    c.models.baseline_cnn.dense_features = (256, 128, 128, 64)
    c.batch_size = 64
    c.num_epochs = 6
    c.learning_rate = 1e-3
    return c
