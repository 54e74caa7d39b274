"""Square face crops, rotated upright on the eye line when landmarks are known.

The crop is centred on the detector's box, its side is the box's longer side plus ``margin``
of it on every side, and it keeps the image's resolution (the model's own preprocessing
resizes it). With landmarks and ``align=True`` the crop is rotated about the box centre so
that the two eyes lie on a horizontal line (the in-plane alignment of Zhang et al. 2016's
landmarks) and sampled bilinearly; otherwise it is an exact copy of the pixels. Pixels
outside the image repeat the nearest edge pixel.
"""

from __future__ import annotations

import math

import numpy as np

from ferjax.faces.detector import Face


def _bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) at float pixel indices ``y``, ``x`` (pixel (i, j)'s centre is at (i, j)),
    float32 ``y.shape + (C,)``; points outside read the nearest edge pixel."""
    h, w = image.shape[:2]
    y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def eye_angle(face: Face) -> float:
    """Angle (radians, clockwise on screen since y points down) of the line from the image-left eye
    to the image-right eye; 0 without landmarks."""
    if face.landmarks is None:
        return 0.0
    (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
    return math.atan2(ry - ly, rx - lx)


def crop_face(image: np.ndarray, face: Face, margin: float = 0.15, align: bool = True) -> np.ndarray:
    """uint8 ``(S, S, C)`` crop of ``image`` (H, W, C) around ``face``; S = round(longer box side · (1 + 2·margin))."""
    if image.ndim != 3:
        raise ValueError(f"crop_face takes (H, W, C) images, got shape {image.shape}")
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    size = max(1, int(round(side)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    angle = eye_angle(face) if align else 0.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    if angle == 0.0:  # integer grid: an exact copy
        ys, xs = rows + round(cy - size / 2), cols + round(cx - size / 2)
    else:
        scale = side / size
        u, v = (cols + 0.5 - size / 2) * scale, (rows + 0.5 - size / 2) * scale
        cos, sin = math.cos(angle), math.sin(angle)
        xs = cx + u * cos - v * sin - 0.5
        ys = cy + u * sin + v * cos - 0.5
    return np.clip(np.round(_bilinear(image, ys, xs)), 0, 255).astype(np.uint8)
