"""Per-image preprocessing shared by training, evaluation and inference (SPEC §2–3).

Every split yields uint8 ``(H, W, C)`` images; :func:`prepare` converts them to the run's
``channels`` (gray ↔ RGB) and resizes them to ``image_size`` × ``image_size`` when they
differ (bilinear, PIL; the aspect ratio is not kept); after augmentation :func:`normalize`
maps pixel values to float32 in [-1, 1] with ``x / 127.5 - 1`` (:data:`NORMALISATION`).
The trainer's pipeline and :class:`ferjax.run.TrainedModel` both call these functions.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NORMALISATION = "x / 127.5 - 1"  # uint8 pixels x -> model input, recorded in run.json

# ITU-R BT.601 luma weights, as PIL's "L" conversion uses.
_LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` with C in {1, 3} to ``(H, W, channels)``."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if have == 3 and channels == 1:
        return np.rint(image.astype(np.float32) @ _LUMA)[..., None].astype(np.uint8)
    raise ValueError(f"cannot convert an image with {have} channels to {channels}")


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` to ``(size, size, C)``; returned unchanged when already that size."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    squeezed = image[..., 0] if image.shape[-1] == 1 else image
    out = np.asarray(Image.fromarray(squeezed).resize((size, size), Image.BILINEAR))
    return out.reshape(size, size, image.shape[-1])


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (or float in [0, 255]) pixels to float32 in [-1, 1]."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def as_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 as is; other numeric arrays are pixel values on the 0–255 scale, rounded to uint8.

    Raises ValueError when a value lies outside [0, 255] (e.g. a float image in [0, 1] is
    accepted, but reads as nearly black: scale it by 255 first).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_):
        raise ValueError(f"images must be numeric pixel arrays, got dtype {image.dtype}")
    if image.size and (not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 255):
        raise ValueError("pixel values must lie in [0, 255] (uint8 scale)")
    return np.rint(image).astype(np.uint8)


def prepare(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """One image, ``(H, W)`` or ``(H, W, 1|3)``, as the model's uint8 ``(size, size, channels)``."""
    image = as_pixels(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"an image must be (H, W) or (H, W, 1|3), got shape {image.shape}")
    return resize(convert_channels(image, channels), size)
