"""Per-image preprocessing shared by training and evaluation (SPEC §2–3).

Every split yields uint8 ``(H, W, C)`` images; the pipeline converts them to the run's
``channels`` (gray ↔ RGB), resizes them to ``image_size`` × ``image_size`` when they differ
(bilinear, PIL; the aspect ratio is not kept) and, after augmentation, maps pixel values to
float32 in [-1, 1] with ``x / 127.5 - 1``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

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
