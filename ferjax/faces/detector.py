"""Detected faces, the detector interface and ``make_detector``.

A detector takes uint8 RGB images ``(H, W, 3)`` and returns, per image, the faces it found,
best score first, in the image's own pixel coordinates. Images whose longer side exceeds
``max_side`` are shrunk (area filter) for detection and the results mapped back.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image

from ferjax.errors import ConfigError, FerjaxError

DETECTORS = ("mtcnn", "haar")
EXTRA_HINT = "face detection needs the predict extra: pip install 'ferjax[predict]' (or use --no_detect)"


class MissingExtra(FerjaxError):
    """An optional dependency group (``pip install 'ferjax[predict]'``) is not installed."""


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """One face: ``box`` (x0, y0, x1, y1) in image pixels (continuous coordinates, may extend past
    the image), ``score`` (MTCNN: O-Net probability; Haar: merged neighbour count; 1.0 for boxes
    a user gives), ``landmarks`` (5, 2) x/y of the eye, eye, nose tip, mouth corner, mouth corner —
    eyes and corners in image left-to-right order — or None."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = None

    def scaled(self, sx: float, sy: float) -> "Face":
        """The same face in an image ``sx`` times as wide and ``sy`` times as tall."""
        landmarks = None if self.landmarks is None else self.landmarks * np.asarray([sx, sy])
        x0, y0, x1, y1 = self.box
        return Face((float(x0 * sx), float(y0 * sy), float(x1 * sx), float(y1 * sy)), self.score, landmarks)


class Detector(abc.ABC):
    """``detect(image)`` / ``detect_batch(images)``; subclasses implement ``_detect_batch``."""

    def __init__(self, max_side: int):
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one uint8 ``(H, W, 3)`` RGB image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """``detect`` for several images (of any sizes) at once."""
        small, factors = zip(*(self._shrink(_checked(image)) for image in images)) if images else ((), ())
        found = self._detect_batch(list(small))
        return [[face.scaled(*factor) for face in faces] if factor else faces for faces, factor in zip(found, factors)]

    def _shrink(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
        """The image to detect on and the (x, y) factors back to the original (None: unchanged)."""
        h, w = image.shape[:2]
        if max(h, w) <= self.max_side:
            return image, None
        ratio = self.max_side / max(h, w)
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
        return small, (w / size[0], h / size[1])

    @abc.abstractmethod
    def _detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces per image, for images no larger than ``max_side``."""


def _checked(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detectors take uint8 (H, W, 3) RGB images, got {image.dtype} {image.shape}")
    return image


def make_detector(name: str = "mtcnn", **options) -> Detector:
    """A face detector: ``"mtcnn"`` (default; ``ferjax.faces.mtcnn.MTCNN`` options) or ``"haar"``
    (``ferjax.faces.haar.HaarDetector`` options). Raises MissingExtra without the predict extra."""
    if name == "mtcnn":
        from ferjax.faces.mtcnn import MTCNN

        return MTCNN(**options)
    if name == "haar":
        from ferjax.faces.haar import HaarDetector

        return HaarDetector(**options)
    raise ConfigError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
