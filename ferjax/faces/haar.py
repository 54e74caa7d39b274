"""The light fallback detector: OpenCV's Viola–Jones Haar cascade (frontal faces, no landmarks).

Runs on the grayscale image with its ``border`` (``ferjax.faces.detector``; 0.2 by default,
which the cascade needs more than MTCNN). Uses ``haarcascade_frontalface_default.xml`` from
``cv2.data``, which opencv-python-headless 4.x ships (5.x dropped it).
"""

from __future__ import annotations

import numpy as np

from ferjax.faces.detector import EXTRA_HINT, Detector, Face, MissingExtra


class HaarDetector(Detector):
    """``detectMultiScale`` with ``scale_factor``, ``min_neighbors`` and ``min_face_size`` (pixels);
    a face's score is the number of raw detections merged into it."""

    def __init__(
        self,
        min_face_size: int = 20,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        border: float = 0.2,
        max_side: int = 1024,
        cascade: str = "haarcascade_frontalface_default.xml",
    ):
        super().__init__(max_side, border)
        try:
            import cv2
        except ImportError:
            raise MissingExtra(EXTRA_HINT) from None
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self._cascade.empty():
            raise MissingExtra(f"OpenCV has no Haar cascade {cascade!r} in {cv2.data.haarcascades}; {EXTRA_HINT}")
        self.min_face_size, self.scale_factor, self.min_neighbors = min_face_size, scale_factor, min_neighbors

    def _detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Face]:
        gray = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY)
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_face_size,) * 2
        )
        faces = [
            Face((float(x), float(y), float(x + w), float(y + h)), float(n))
            for (x, y, w, h), n in zip(np.reshape(rects, (-1, 4)), np.ravel(neighbours))
        ]
        return sorted(faces, key=lambda face: -face.score)
