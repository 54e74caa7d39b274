"""Reading image and video files to uint8 arrays with one-line errors (SPEC §9).

``decode`` is what the dataset builders use (pixels as stored, fixed channels and size);
``read_image`` is what prediction uses on arbitrary user photos: EXIF orientation applied,
every Pillow mode brought to 8-bit RGB. Both open files through ``_load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from ferjax.errors import DataError

_MODES = {1: "L", 3: "RGB"}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


def _load(path: Path) -> Image.Image:
    """The decoded Pillow image at ``path``; DataError naming the file when it cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: cannot decode image (empty file)")
    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: image too large to decode safely ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's errors for non-image, corrupt, truncated files
        raise DataError(f"{path}: cannot decode image ({err})") from None
    return image


def decode(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image at ``path`` as uint8 ``(H, W, channels)``, pixels as stored (no EXIF rotation).

    Raises DataError naming the file when it is unreadable, corrupt or truncated, or when
    ``size`` (height, width) is given and the image has another size.
    """
    with _load(path) as image:
        pixels = np.asarray(image.convert(_MODES[channels]))
    if size is not None and pixels.shape[:2] != tuple(size):
        raise DataError(f"{path}: expected a {size[1]}x{size[0]} image, got {pixels.shape[1]}x{pixels.shape[0]}")
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def read_image(path: Path) -> np.ndarray:
    """A photo as uint8 ``(H, W, 3)`` RGB, upright as a viewer shows it.

    EXIF orientation is applied; CMYK, YCbCr, palette, grayscale and bilevel images are
    converted; transparency (RGBA, LA, PA, palette with a transparent index) is composited
    on white; 16-bit grayscale is scaled to 8 bits (``round(v / 257)``: 65535 → 255).
    ICC profiles are not applied. Raises DataError naming the file on any failure.
    """
    with _load(path) as loaded:
        try:
            image = ImageOps.exif_transpose(loaded)
        except (OSError, SyntaxError, ValueError, KeyError, TypeError) as err:  # malformed EXIF block
            raise DataError(f"{path}: cannot apply its EXIF orientation ({err})") from None
        try:
            return _to_rgb(image)
        except ValueError as err:  # a mode Pillow cannot convert to RGB (e.g. LAB)
            raise DataError(f"{path}: cannot convert a {image.mode} image to RGB ({err})") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT:
        gray = np.clip(np.round(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def is_video(path: Path) -> bool:
    """Whether ``path`` names a video by its extension (``VIDEO_SUFFIXES``, any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video_frames(path: Path, every_nth: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame_index, uint8 (H, W, 3) RGB)`` for every ``every_nth`` frame of a video (OpenCV).

    Opens the file and decodes the first frame before returning, so a missing, unreadable or
    frameless video raises DataError naming it here, not half-way through. OpenCV comes with
    the ``predict`` extra.
    """
    if every_nth < 1:
        raise ValueError(f"every_nth must be >= 1, got {every_nth}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    try:
        import cv2
    except ImportError:
        raise DataError(f"{path}: reading videos needs the predict extra: pip install 'ferjax[predict]'") from None
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise DataError(f"{path}: cannot decode video (OpenCV opened no frame)")
    return _frames(capture, first, every_nth)


def _frames(capture, first: np.ndarray, every_nth: int) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    try:
        yield 0, cv2.cvtColor(first, cv2.COLOR_BGR2RGB)
        index = 0
        while True:
            for _ in range(every_nth - 1):  # skipped frames are grabbed, not decoded
                index += 1
                if not capture.grab():
                    return
            index += 1
            ok, frame = capture.read()
            if not ok:
                return
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def image_files(folder: Path) -> list[Path]:
    """Visible regular files of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
