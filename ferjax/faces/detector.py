"""Detected faces, the detector interface and ``make_detector``.

A detector takes uint8 RGB images ``(H, W, 3)`` and returns, per image, the faces it found,
best score first, in the image's own pixel coordinates. Before detection, images whose longer
side exceeds ``max_side`` are shrunk (Pillow's box filter), then surrounded by a mid-gray
(128) border of ``border`` × their longer side: both detectors only test windows wholly inside
the image, so without it a face that fills the photo (a face crop) is missed. On 15 tight
crops of skimage's astronaut face (cheeks or forehead cut off), a 0.2 border raised MTCNN
from 7 to 15 found and the Haar cascade from 1 to 14 (0.1: 13 and 5).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image

from ferjax.errors import ConfigError, MissingExtra

DETECTORS = ("mtcnn", "haar")
EXTRA_HINT = "face detection needs the predict extra: pip install 'ferjax[predict]' (or use --no_detect)"


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """One face: ``box`` (x0, y0, x1, y1) in image pixels (continuous coordinates, may extend past
    the image), ``score`` (MTCNN: O-Net probability; Haar: merged neighbour count; 1.0 for boxes
    a user gives), ``landmarks`` (5, 2) x/y of the eye, eye, nose tip, mouth corner, mouth corner —
    eyes and corners in image left-to-right order — or None."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = None


class Detector(abc.ABC):
    """``detect(image)`` / ``detect_batch(images)``; subclasses implement ``_detect_batch``."""

    def __init__(self, max_side: int, border: float):
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        if not 0 <= border <= 1:
            raise ValueError(f"border must be in [0, 1], got {border}")
        self.max_side, self.border = max_side, border

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one uint8 ``(H, W, 3)`` RGB image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """``detect`` for several images (of any sizes) at once."""
        prepared = [self._prepare(_checked(image)) for image in images]
        found = self._detect_batch([work for work, _, _ in prepared])
        return [[_to_original(face, pad, scale) for face in faces] for faces, (_, pad, scale) in zip(found, prepared)]

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, int, tuple[float, float]]:
        """The image to detect on, its border width and the (x, y) factors back to the original."""
        h, w = image.shape[:2]
        scale = (1.0, 1.0)
        if max(h, w) > self.max_side:
            ratio = self.max_side / max(h, w)
            size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
            scale = (w / size[0], h / size[1])
        pad = int(round(self.border * max(image.shape[:2])))
        if pad:
            image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
        return image, pad, scale

    @abc.abstractmethod
    def _detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces per prepared image (shrunk and bordered), in its coordinates, best first."""


def _to_original(face: Face, pad: int, scale: tuple[float, float]) -> Face:
    """``face`` found in a prepared image, in the original image's coordinates."""
    sx, sy = scale
    x0, y0, x1, y1 = face.box
    box = ((x0 - pad) * sx, (y0 - pad) * sy, (x1 - pad) * sx, (y1 - pad) * sy)
    landmarks = None if face.landmarks is None else (face.landmarks - pad) * np.asarray([sx, sy])
    return Face(tuple(float(v) for v in box), face.score, landmarks)


def _checked(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detectors take uint8 (H, W, 3) RGB images, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


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
