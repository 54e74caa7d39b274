"""CK+ (SPEC §3): subject-independent 10-fold cross-validation, 7 classes (6 basic + contempt).

Recipe (from scratch; issue 13): baseline CNN at the demo's width (conv 32/64/128, dense
256/128/128/64), softmax with label smoothing 0.1, AdamW (lr 1e-3, decoupled weight decay
1e-4), cosine schedule with a 2-epoch warm-up, batch 32, 160 epochs (3,840 steps per fold: 24 per
epoch), flip + random crop (4 px zero padding) + rotation ±10° + shift ±10% + zoom ±10%,
checkpoint selected on the validation fold, no TTA, no ensemble. 160 epochs were chosen over 80
on the validation folds of all 10 folds, seeds 0 and 1, by a rule written before the runs
(benchmarks/RESULTS.md "CK+ recipe"; 80 epochs and the architecture were chosen earlier on folds 0
and 5).

All 10 folds — expected test accuracy 90.7 ± 5.5% (mean ± sample std over 10 folds × seeds 0
and 1, min 78.1%; per seed 89.8% and 91.6%; measured 2026-12-07), budget 40–44 min on 2 CPU
cores (2-core AMD EPYC, 230–270 s per fold; CPU time 71–78 min user + sys), measured before
max-pooling became slices on CPU (2026-12-08), which made a fold ≈ 1.3× faster on another, ≈ 2×
slower 2-core EPYC (332–364 s per fold there, ≈ 480 s before; folds 0–4, seed 0: test 87.7%, each
fold within the recorded runs' range); details in benchmarks/RESULTS.md "CK+ recipe":

    FERJAX_DATA_DIR=../shared/data python -m ferjax.crossval --config=configs/ckplus.py --workdir=runs/ckplus_cv

One fold (the config argument, default 0; or ``--config.datasets.ckplus.fold=3``):

    python -m ferjax.main --config=configs/ckplus.py:0 --workdir=runs/ckplus_fold0

Data: $FERJAX_DATA_DIR/ckplus48/CK+48 (CK+48 layout) or the original cohn-kanade-images/ +
Emotion/ layout.
"""

from ferjax import config


def get_config(fold: str = "0"):
    c = config.get_config()
    c.dataset = "ckplus"
    c.datasets.ckplus.fold = int(fold)
    c.image_size = 48
    c.channels = 1
    c.model = "baseline_cnn"
    c.models.baseline_cnn.conv_features = (32, 64, 128)
    c.models.baseline_cnn.dense_features = (256, 128, 128, 64)
    c.loss = "softmax"
    c.losses.softmax.label_smoothing = 0.1
    c.optimizer = "adamw"
    c.learning_rate = 1e-3
    c.weight_decay = 1e-4
    c.schedule.name = "cosine"
    c.schedule.warmup_epochs = 2
    c.batch_size = 32
    c.num_epochs = 160
    c.eval_batch_size = 128
    c.augment.rotation_degrees = 10.0
    c.augment.crop_padding = 4
    return c
