"""The built-in ``demo`` dataset: procedural faces generated in memory (issue 2, item 5).

No files, no network. Sizes and the data seed are options (``config.datasets.demo``); the
data seed is separate from ``config.seed`` so every training seed sees the same data. Each
split is exactly class-balanced and drawn with its own generator, seeded by (seed, split).
``validation_size`` or ``test_size`` 0 leaves that split out; other sizes below 0 (or a train
size below 1) are a ``ConfigError``.
"""

from __future__ import annotations

import numpy as np

from ferjax import data
from ferjax.data.sources import ArraySource
from ferjax.datasets import demo_faces
from ferjax.errors import ConfigError

_SPLITS = ("train", "validation", "test")


def generate(size: int, seed: int, split: str) -> ArraySource:
    """``size`` faces for ``split``, classes balanced (sizes differ by at most one)."""
    rng = np.random.default_rng([seed, _SPLITS.index(split)])
    labels = rng.permutation(np.arange(size) % len(demo_faces.CLASS_NAMES))
    return ArraySource(demo_faces.render(labels, rng), labels)


@data.DATASETS.register("demo", train_size=6000, validation_size=1000, test_size=1000, seed=0)
def load(config) -> data.DatasetSplits:
    options = config.datasets.demo
    sizes = {"train": options.train_size, "validation": options.validation_size, "test": options.test_size}
    for name, size in sizes.items():
        if size < (1 if name == "train" else 0):
            allowed = "at least 1" if name == "train" else f"at least 0 (0 leaves the {name} split out)"
            raise ConfigError(f"config.datasets.demo.{name}_size={size}: must be {allowed}")
    splits = {name: generate(size, options.seed, name) if size > 0 else None for name, size in sizes.items()}
    return data.DatasetSplits(
        name="demo",
        class_names=demo_faces.CLASS_NAMES,
        notes=["procedural faces generated in memory (seed %d)" % options.seed],
        **splits,
    )
