"""CIFAR-10 (SPEC §3, a generic check) from the local python-pickle release, in memory.

Put the extracted ``cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta) in
``<data_dir>/cifar10/`` or ``<data_dir>/``; nothing is downloaded. 32×32 RGB, the standard
10 classes. Validation: the last ``validation_size`` training images (default 5,000),
train the first 45,000; test is the official test batch.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ferjax import data
from ferjax.data import paths
from ferjax.data.sources import ArraySource
from ferjax.errors import ConfigError, DataError

_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))

def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(f"{path}: cannot read CIFAR-10 batch ({err})") from None


def read_batches(folder: Path, names: tuple[str, ...]) -> ArraySource:
    images, labels = [], []
    for name in names:
        batch = _unpickle(folder / name)
        try:
            pixels = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
            labels.append(np.asarray(batch[b"labels"], np.int64))
        except (KeyError, ValueError) as err:
            raise DataError(f"{folder / name}: not a CIFAR-10 python batch ({err})") from None
        images.append(pixels.transpose(0, 2, 3, 1))
    return ArraySource(np.concatenate(images), np.concatenate(labels))


@data.DATASETS.register("cifar10", validation_size=5000)
@paths.reports_unreadable_files
def load(config) -> data.DatasetSplits:
    root = paths.data_root(config)
    folder = paths.first_existing(root / "cifar10" / "cifar-10-batches-py", root / "cifar-10-batches-py")
    if folder is None or not (folder / "test_batch").is_file():
        raise DataError(
            f"CIFAR-10 not found: put the extracted cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) "
            f"in {root}/cifar10/ (python version from https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    names = tuple(n.decode() for n in _unpickle(folder / "batches.meta")[b"label_names"])
    train, test = read_batches(folder, _TRAIN), read_batches(folder, ("test_batch",))
    held = int(config.datasets.cifar10.validation_size)
    if not 0 <= held < len(train):
        raise ConfigError(f"config.datasets.cifar10.validation_size={held} must be in 0..{len(train) - 1}")
    cut = len(train) - held
    notes = [f"read from {folder}"]
    if held:
        notes.append(f"validation = the last {held} training images (train uses the first {cut}); test = test_batch")
    return data.DatasetSplits(
        name="cifar10",
        class_names=names,
        train=ArraySource(train.images[:cut], train.labels[:cut]),
        validation=ArraySource(train.images[cut:], train.labels[cut:]) if held else None,
        test=test,
        notes=notes,
    )
