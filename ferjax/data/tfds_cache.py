"""TFDS builders without TensorFlow, prepared once into a cache (SPEC §2, §9).

A dataset module describes what to prepare with a :class:`Plan` — the layout found, a
fingerprint of the raw files and options, image shape, class names and a ``generate``
function yielding ``(key, example)`` pairs per split — and subclasses
:class:`PlannedBuilder` to name it and declare scalar extra features. Features are
``tfds.features.Tensor`` images (raw bytes) and ``ClassLabel`` labels; no
``tfds.features.Image``, whose encoder needs TensorFlow. :func:`load` prepares the
builder as ``array_record`` under ``<cache>/<builder>/<layout>-<fingerprint>/<version>/``
unless that exists, and opens every split with ``as_data_source``.

The fingerprint hashes the options and each raw file's path, size and *content*, so a changed
file or option gives a fresh preparation, while the same files copied again (new mtimes: a
re-synced data folder, a Colab session's copy from Drive) reuse the prepared copy instead of
leaving another one behind. Reading every file costs seconds (3 s for FER-2013's 32k images),
so ``<cache>/<builder>/fingerprints.json`` remembers the content fingerprint of each quick
fingerprint (path, size, mtime); only a quick fingerprint not seen before reads the files.

Atomicity: TFDS writes into an ``incomplete.<random>_<version>`` folder and renames it
only after every split was written (``tfds.core.utils.incomplete_dir``); on any error that
folder is deleted, so a failed preparation leaves no dataset behind (tests check this).

Concurrency and killed runs: a preparation holds an exclusive ``flock`` on
``<cache>/<builder>/.prepare.lock`` (a second process waits, then finds the copy ready).
The kernel drops the lock when its holder dies, even by ``kill -9``, so an ``incomplete.*``
folder found while holding the lock is abandoned; those are deleted and a warning says so.

Errors writing the cache (read-only or full folder, SPEC §9) become one-line ``DataError``s
naming the cache folder and the cause; nothing half-written is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.core.constants import INCOMPLETE_PREFIX

from ferjax.data.badfiles import BadFiles
from ferjax.data.sources import RecordSource
from ferjax.errors import DataError

Examples = Iterable[tuple[str, dict]]
# Causes named in the errors of array_record's C++ writer, which carry no errno.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What a prepared copy is made from: options (``parts``) and raw files."""

    parts: tuple
    files: tuple[Path, ...]

    def quick(self) -> str:
        """A short hash of the storage format, the parts and each file's path, size and mtime."""
        digest = self._digest()
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def content(self) -> str:
        """A short hash of the storage format, the parts and each file's path and bytes.

        A file that cannot be read counts by its size and mtime: preparing it reports it as a
        bad file (or skips it) in the dataset's words.
        """
        digest = self._digest()
        for path in self.files:
            try:
                stamp = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                stat = path.stat()
                stamp = f"unreadable\0{stat.st_size}\0{stat.st_mtime_ns}"
            digest.update(f"{path}\0{stamp}\n".encode())
        return digest.hexdigest()[:16]

    def _digest(self):
        return hashlib.sha256(repr((STORAGE_FORMAT, self.parts)).encode())


def identity(*parts: object, files: Iterable[Path] = ()) -> Identity:
    return Identity(parts, tuple(files))


@dataclasses.dataclass
class Plan:
    layout: str
    identity: Identity
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    generate: Callable[[BadFiles], dict[str, Examples]]  # split -> examples; runs only when preparing


# Bump when the stored records change (features, encoding, order) so old caches are not read.
STORAGE_FORMAT = 2


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
    index_path = cache_dir / builder_cls.name / "fingerprints.json"
    index, quick = _read_index(index_path), plan.identity.quick()
    fingerprint = index.get(quick)
    known = isinstance(fingerprint, str)
    if not known:
        fingerprint = plan.identity.content()
    config = tfds.core.BuilderConfig(name=f"{plan.layout}-{fingerprint}")

    def make() -> PlannedBuilder:
        # The fingerprinted config is ours by design: TFDS's "Using custom data configuration"
        # warning on every run would only be noise on the console.
        with _tfds_warnings_off():
            return builder_cls(plan=plan, bad_files=bad_files, config=config, data_dir=str(cache_dir), file_format="array_record")

    def is_prepared(builder: PlannedBuilder) -> bool:
        # Before the first preparation TFDS warns that the (empty) version folder "has no
        # dataset_info.json": expected, and not the user's business.
        with _tfds_warnings_off():
            return builder.is_prepared()

    builder = make()
    if not is_prepared(builder):
        with _cache_errors(cache_dir), _exclusive(cache_dir / builder.name):
            if not is_prepared(builder):  # not prepared by a process we waited for
                _remove_stale(cache_dir / builder.name)
                logging.info("Preparing %s (%s layout) into %s", builder.name, plan.layout, builder.data_path)
                with _quiet_preparation():
                    builder.download_and_prepare(download_dir=str(cache_dir / "downloads"))
        builder = make()
    if not known:  # recorded once the copy exists, so a failed preparation leaves nothing behind
        _remember(index_path, index, quick, fingerprint)
    sources = builder.as_data_source()
    return Prepared(
        splits={str(split): RecordSource(source) for split, source in sources.items()},
        skipped_bad_files=int(builder.info.metadata.get("skipped_bad_files", 0)),
        path=Path(str(builder.data_path)),
    )


def _remember(index_path: Path, entries: dict, quick: str, content: str) -> None:
    """Add ``quick -> content`` to the fingerprint index; a cache that cannot be written does without."""
    partial = index_path.with_name(f".{index_path.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps({**entries, quick: content}, indent=0, sort_keys=True))
        os.replace(partial, index_path)  # atomic: a reader sees the old or the new index, never half of one
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _read_index(index_path: Path) -> dict:
    try:
        entries = json.loads(index_path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logging.warning("Ignoring the damaged fingerprint index %s (%s); it will be rewritten", index_path, err)
        return {}
    if not isinstance(entries, dict):
        logging.warning("Ignoring the damaged fingerprint index %s (not a JSON object); it will be rewritten", index_path)
        return {}
    return entries


@contextlib.contextmanager
def _tfds_warnings_off() -> Iterator[None]:
    """absl (TFDS's logger) at ERROR for the duration; lower verbosity is quieter."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(min(verbosity, logging.ERROR))
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


@contextlib.contextmanager
def _quiet_preparation() -> Iterator[None]:
    """TFDS's console output while it prepares: its progress bars only on a terminal (in a log they
    are lines of escape codes), and not its "downloaded and prepared" banner on stdout (the
    dataset loader says where the prepared copy is, in ferjax's own words)."""
    tfds.display_progress_bar(sys.stderr.isatty())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(True)  # TFDS's default


@contextlib.contextmanager
def _exclusive(builder_dir: Path) -> Iterator[None]:
    """Hold the builder's preparation lock (waiting for another process that holds it)."""
    builder_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(builder_dir / ".prepare.lock", os.O_RDONLY | os.O_CREAT, 0o666)  # flock needs no write access
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.warning("Waiting for another process that is preparing %s", builder_dir)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # releases the lock


def _remove_stale(builder_dir: Path) -> None:
    """Delete the ``incomplete.*`` folders of killed preparations; call it holding the lock."""
    stale = sorted(builder_dir.glob(f"*/{INCOMPLETE_PREFIX}*"))
    for path in stale:
        shutil.rmtree(path)
    if stale:
        logging.warning(
            "Removed %d incomplete folder(s) left by an interrupted preparation: %s", len(stale), ", ".join(map(str, stale))
        )


@contextlib.contextmanager
def _cache_errors(cache_dir: Path) -> Iterator[None]:
    """Turn a failure to write ``cache_dir`` into a one-line DataError; other errors pass."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        cause = _cache_failure(err, cache_dir)
        if cause is None:
            raise
        raise DataError(
            f"cannot write the prepared dataset to the cache folder {cache_dir}: {cause} (nothing was kept; choose a "
            "writable folder with enough space: $FERJAX_CACHE_DIR or the dataset's cache_dir option)"
        ) from err


def _cache_failure(err: BaseException, cache_dir: Path) -> str | None:
    """Why writing the cache failed, or None when ``err`` is not about the cache (e.g. a raw file)."""
    cause: BaseException | None = err
    while cause is not None:  # TFDS re-raises with a prefix: the errno is on an inner exception
        if isinstance(cause, OSError) and cause.errno is not None:
            outside = cause.filename is not None and not Path(cause.filename).absolute().is_relative_to(cache_dir.absolute())
            return None if outside else cause.strerror
        cause = cause.__cause__
    text = " ".join(str(err).split())
    if isinstance(err, OSError):
        return text
    # array_record's writer raises RuntimeError("... write() failed: No space left on device; writing <file> ...")
    if str(cache_dir) in text:
        return next((os.strerror(code) for code in _WRITE_ERRNOS if os.strerror(code) in text), text)
    return None
