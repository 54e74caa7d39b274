"""Decoding image files to uint8 arrays with one-line errors (SPEC §9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferjax.errors import DataError

_MODES = {1: "L", 3: "RGB"}


def decode(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image at ``path`` as uint8 ``(H, W, channels)``.

    Raises DataError naming the file when it is unreadable, corrupt or truncated, or when
    ``size`` (height, width) is given and the image has another size.
    """
    try:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert(_MODES[channels]))
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for corrupt/truncated files
        raise DataError(f"{path}: cannot decode image ({err})") from None
    if size is not None and pixels.shape[:2] != tuple(size):
        raise DataError(f"{path}: expected a {size[1]}x{size[0]} image, got {pixels.shape[1]}x{pixels.shape[0]}")
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def image_files(folder: Path) -> list[Path]:
    """Visible regular files of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
