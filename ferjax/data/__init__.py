"""The data layer: dataset registry, split sources and the input pipeline (SPEC §2–3).

``ferjax.data`` holds what every dataset shares: the registry :data:`DATASETS` and the split
container :class:`DatasetSplits` the trainer consumes, the random-access split sources
(:mod:`~ferjax.data.sources`), the prepared-copy cache (:mod:`~ferjax.data.tfds_cache`), image
decoding, preprocessing and augmentation, and the Grain pipeline (:mod:`~ferjax.data.pipeline`).
The datasets themselves (readers and TFDS builders for FER-2013, RAF-DB, CK+, CIFAR-10, the demo
set) live in :mod:`ferjax.datasets`; importing ``ferjax.data`` registers them all.

A registered dataset factory takes the run's config and returns :class:`DatasetSplits`.
Each split is a random-access source: ``len(src)`` and ``src[i] -> {"image": uint8 (H, W, C),
"label": int}``. Dataset options live in ``config.datasets.<name>``, declared when registering:
``@DATASETS.register(name, **defaults)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import ml_collections

from ferjax.errors import ConfigError
from ferjax.registry import Registry


@dataclasses.dataclass
class DatasetSplits:
    name: str
    class_names: Sequence[str]
    train: Any
    validation: Optional[Any] = None
    test: Optional[Any] = None
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. "no PrivateTest split present"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: Registry[Callable[[ml_collections.ConfigDict], DatasetSplits]] = Registry("dataset")

def load_dataset(config: ml_collections.ConfigDict) -> DatasetSplits:
    """The splits of ``config.dataset``, without the classes named in ``config.exclude_classes``."""
    splits = DATASETS.get(config.dataset)(config)
    excluded = [n.strip() for n in str(config.get("exclude_classes", "")).split(",") if n.strip()]
    return without_classes(splits, excluded) if excluded else splits


def without_classes(splits: DatasetSplits, excluded: Sequence[str]) -> DatasetSplits:
    """Every split without the examples of ``excluded`` classes; the other classes keep their
    order and are numbered 0..C'-1 (the held-out classes of seed 002's enrollment experiment)."""
    import numpy as np

    from ferjax.data.sources import SubsetSource, labels_of

    unknown = [n for n in excluded if n not in splits.class_names]
    if unknown:
        raise ConfigError(f"config.exclude_classes: {', '.join(unknown)} not in dataset {splits.name!r} "
                          f"(classes: {', '.join(splits.class_names)})")
    keep = [i for i, n in enumerate(splits.class_names) if n not in excluded]
    if len(keep) < 2:
        raise ConfigError(f"config.exclude_classes={','.join(excluded)!r} leaves fewer than 2 classes to train")
    new_label = np.full(len(splits.class_names), -1, np.int64)
    new_label[keep] = np.arange(len(keep))

    def subset(source):
        if source is None:
            return None
        return SubsetSource(source, np.flatnonzero(new_label[labels_of(source)] >= 0), label_map=new_label)

    return dataclasses.replace(
        splits, class_names=[splits.class_names[i] for i in keep], train=subset(splits.train),
        validation=subset(splits.validation), test=subset(splits.test),
        notes=[*splits.notes, f"classes left out of every split (config.exclude_classes): {', '.join(excluded)}"])


# Importing the dataset modules registers them (they import this package's names above).
from ferjax.datasets import cifar10 as _cifar10  # noqa: E402,F401
from ferjax.datasets import ckplus as _ckplus  # noqa: E402,F401
from ferjax.datasets import demo as _demo  # noqa: E402,F401
from ferjax.datasets import fer2013 as _fer2013  # noqa: E402,F401
from ferjax.datasets import rafdb as _rafdb  # noqa: E402,F401
