"""CK+ (SPEC §3): subject-independent k-fold cross-validation; this config trains one fold.

The fold is the config argument (default 0): ``configs/ckplus.py:3``, or
``--config.datasets.ckplus.fold=3``. Data: $FERJAX_DATA_DIR/ckplus48/CK+48 (CK+48 layout) or
the original cohn-kanade-images/ + Emotion/ layout.

Run:  python -m ferjax.main --config=configs/ckplus.py:0 --workdir=runs/ckplus_fold0
"""

from ferjax import config


def get_config(fold: str = "0"):
    c = config.get_config()
    c.dataset = "ckplus"
    c.datasets.ckplus.fold = int(fold)
    c.image_size = 48
    c.channels = 1
    c.model = "baseline_cnn"
    c.batch_size = 32
    c.num_epochs = 30
    c.eval_batch_size = 128
    c.learning_rate = 1e-3
    c.augment.rotation_degrees = 10.0
    return c
