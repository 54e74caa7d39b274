"""Dataset registry and the split container the trainer consumes.

A registered dataset factory takes the run's config and returns :class:`DatasetSplits`.
Each split is a random-access source: ``len(src)`` and ``src[i] -> {"image": uint8 (H, W, C),
"label": int}`` (a ``tfds.data_source`` or an in-memory array source). Dataset options live
in ``config.datasets.<name>`` (defaults from :func:`default_config`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import ml_collections

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

_DEFAULTS: dict[str, dict] = {}


def register_defaults(name: str, **options) -> None:
    _DEFAULTS[name] = options


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({name: dict(o) for name, o in _DEFAULTS.items()})


def load_dataset(config: ml_collections.ConfigDict) -> DatasetSplits:
    return DATASETS.get(config.dataset)(config)
