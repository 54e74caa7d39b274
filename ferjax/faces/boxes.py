"""Box geometry for the detectors: IoU, greedy non-maximum suppression, squaring.

Boxes are float ``(N, 4)`` arrays ``(x0, y0, x1, y1)`` in continuous pixel coordinates: pixel
``(i, j)`` covers ``[j, j+1) × [i, i+1)``, so a box's width is ``x1 - x0`` (MTCNN's inclusive
``x2 - x1 + 1`` of Zhang et al. 2016).
"""

from __future__ import annotations

import numpy as np


def area(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas; empty (inverted) boxes have area 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def overlap(a: np.ndarray, b: np.ndarray, mode: str = "union") -> np.ndarray:
    """``(N, M)`` intersection over union (``"union"``) or over the smaller box (``"min"``)."""
    inter_w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = inter_w * inter_h
    area_a, area_b = area(a)[:, None], area(b)[None, :]
    if mode == "union":
        denominator = area_a + area_b - inter
    elif mode == "min":
        denominator = np.minimum(area_a, area_b)
    else:
        raise ValueError(f"overlap mode must be 'union' or 'min', got {mode!r}")
    return np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy NMS, best score first: a box is dropped when its overlap with an
    already kept box exceeds ``threshold`` (Zhang et al. 2016's ``nms``; ties keep the earlier box)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(int(best))
        order = order[overlap(boxes[best : best + 1], boxes[order], mode)[0] <= threshold]
    return np.asarray(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares of side ``max(w, h)`` about the same centre (MTCNN's ``rerec``)."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MTCNN's box calibration: each edge moves by its offset times the box's width/height."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    return boxes + offsets * size
