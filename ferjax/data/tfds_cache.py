"""TFDS builders without TensorFlow, prepared once into a cache (SPEC §2, §9).

A dataset module describes what to prepare with a :class:`Plan` — the layout found, a
fingerprint of the raw files and options, image shape, class names and a ``generate``
function yielding ``(key, example)`` pairs per split — and subclasses
:class:`PlannedBuilder` to name it and declare scalar extra features. Features are
``tfds.features.Tensor`` images (raw bytes) and ``ClassLabel`` labels; no
``tfds.features.Image``, whose encoder needs TensorFlow. :func:`load` prepares the
builder as ``array_record`` under ``<cache>/<builder>/<layout>-<fingerprint>/<version>/``
unless that exists, and opens every split with ``as_data_source``. A changed raw file
(size or mtime) or option gives a new fingerprint, hence a fresh preparation.

Atomicity: TFDS writes into a ``<version>.incomplete*`` folder and renames it only after
every split was written (``tfds.core.utils.incomplete_dir``); on any error that folder is
deleted, so a failed preparation leaves no dataset behind (tests check this).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from ferjax.data.badfiles import BadFiles
from ferjax.data.sources import RecordSource

Examples = Iterable[tuple[str, dict]]


@dataclasses.dataclass
class Plan:
    layout: str
    fingerprint: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    generate: Callable[[BadFiles], dict[str, Examples]]  # split -> examples; runs only when preparing


# Bump when the stored records change (features, encoding, order) so old caches are not read.
STORAGE_FORMAT = 2


def fingerprint(*parts: object, files: Iterable[Path] = ()) -> str:
    """A short hash of the storage format, ``parts`` and each file's path, size and mtime."""
    digest = hashlib.sha256(repr((STORAGE_FORMAT, parts)).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class PlannedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GeneratorBasedBuilder whose examples come from a :class:`Plan`."""

    VERSION = tfds.core.Version("1.0.0")
    EXTRA_FEATURES: ClassVar[dict[str, type]] = {}  # scalar features, e.g. {"subject": np.int32}
    # Nothing is downloaded: no checksum file to look up (TFDS would locate it next to this
    # module through `importlib_resources`, an extra dependency).
    url_infos = None

    def __init__(self, *, plan: Plan, bad_files: BadFiles, **kwargs):
        self._plan, self._bad_files = plan, bad_files
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "image": tfds.features.Tensor(
                shape=self._plan.image_shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
            ),
            "label": tfds.features.ClassLabel(names=list(self._plan.class_names)),
            **{name: tfds.features.Tensor(shape=(), dtype=dtype) for name, dtype in self.EXTRA_FEATURES.items()},
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # records keep the generation order: sorted files, CSV lines
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the plan already located the raw files
        return {split: self._generate_examples(examples) for split, examples in self._plan.generate(self._bad_files).items()}

    def _generate_examples(self, examples: Examples):
        yield from examples
        self.info.metadata["skipped_bad_files"] = self._bad_files.count


@dataclasses.dataclass
class Prepared:
    splits: dict[str, RecordSource]
    skipped_bad_files: int
    path: Path


def load(builder_cls: type[PlannedBuilder], plan: Plan, bad_files: BadFiles, cache_dir: Path) -> Prepared:
    """Prepare ``plan`` with ``builder_cls`` into ``cache_dir`` (once) and open its splits."""
    config = tfds.core.BuilderConfig(name=f"{plan.layout}-{plan.fingerprint}")
    builder = builder_cls(
        plan=plan, bad_files=bad_files, config=config, data_dir=str(cache_dir), file_format="array_record"
    )
    if not builder.is_prepared():
        logging.info("Preparing %s (%s layout) into %s", builder.name, plan.layout, builder.data_path)
        try:
            builder.download_and_prepare(download_dir=str(cache_dir / "downloads"))
        except OSError:
            if not builder.is_prepared():  # not another process that finished first
                raise
        builder = builder_cls(
            plan=plan, bad_files=bad_files, config=config, data_dir=str(cache_dir), file_format="array_record"
        )
    sources = builder.as_data_source()
    return Prepared(
        splits={str(split): RecordSource(source) for split, source in sources.items()},
        skipped_bad_files=int(builder.info.metadata.get("skipped_bad_files", 0)),
        path=Path(str(builder.data_path)),
    )
