"""Dataset builders (TFDS without TensorFlow) and the in-memory demo set (SPEC §2–3)."""

import importlib

_MODULES = ("demo", "fer2013", "ckplus", "rafdb", "cifar10")


def register_all() -> None:
    """Import every dataset module so that it registers itself in ferjax.data.DATASETS."""
    for name in _MODULES:
        importlib.import_module(f"ferjax.datasets.{name}")
