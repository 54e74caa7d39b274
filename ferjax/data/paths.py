"""Where raw datasets are read from and where prepared TFDS copies are cached (SPEC §2).

Raw data: ``config.data_dir``, else ``$FERJAX_DATA_DIR``, else ``~/ferjax_data``; each
dataset looks in its own sub-folder (``fer2013/``, ``rafdb/``, ``ckplus/`` ...).
Prepared ``array_record`` files: the dataset option ``cache_dir``, else
``$FERJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/ferjax/tfds`` (``~/.cache/ferjax/tfds``) —
never inside the repository.

:func:`reports_unreadable_files` turns an ``OSError`` while reading raw data (a folder or
file the user may not read) into a one-line ``DataError`` naming the path (SPEC §9).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, TypeVar

from ferjax.errors import DataError

T = TypeVar("T")


def data_root(config) -> Path:
    """The folder that holds one sub-folder per raw dataset."""
    chosen = config.data_dir or os.environ.get("FERJAX_DATA_DIR") or "~/ferjax_data"
    return Path(chosen).expanduser()


def cache_root(cache_dir: str = "") -> Path:
    """The TFDS ``data_dir`` for prepared datasets."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("FERJAX_CACHE_DIR"):
        return Path(os.environ["FERJAX_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "ferjax" / "tfds"


def first_existing(*candidates: Path) -> Path | None:
    """The first candidate path that exists, or None."""
    return next((path for path in candidates if path.exists()), None)


def reports_unreadable_files(load: Callable[..., T]) -> Callable[..., T]:
    """Wrap a dataset factory: an ``OSError`` escaping it (raw data it cannot read) becomes a DataError."""

    @functools.wraps(load)
    def wrapper(*args, **kwargs) -> T:
        try:
            return load(*args, **kwargs)
        except OSError as err:
            where = err.filename if err.filename is not None else "the raw data"
            raise DataError(f"cannot read {where}: {err.strerror or err}") from err

    return wrapper
