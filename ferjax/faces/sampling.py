"""Bilinear sampling of an image at arbitrary points (NumPy), for detector patches and face crops."""

from __future__ import annotations

import numpy as np


def bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray, fill: float | None = None) -> np.ndarray:
    """``image`` (H, W, C) sampled at float pixel indices ``y``, ``x`` (same shape S; pixel
    ``(i, j)``'s centre is at ``y = i, x = j``); returns float32 ``S + (C,)``.

    Outside the image: ``fill=None`` repeats the edge pixels, a number reads that constant.
    """
    h, w = image.shape[:2]
    if fill is None:
        y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y), np.floor(x)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    out = np.zeros(y.shape + image.shape[2:], np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            taps = image[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float32)
            if fill is not None:
                inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                taps = np.where(inside[..., None], taps, np.float32(fill))
            out += (wy * wx).astype(np.float32) * taps
    return out


def box_grid(boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample points ``(N, size, size)`` at the centres of a ``size``×``size`` grid over each box."""
    steps = (np.arange(size) + 0.5) / size
    xs = boxes[:, 0:1] + steps[None] * (boxes[:, 2:3] - boxes[:, 0:1]) - 0.5
    ys = boxes[:, 1:2] + steps[None] * (boxes[:, 3:4] - boxes[:, 1:2]) - 0.5
    return np.broadcast_to(ys[:, :, None], (len(boxes), size, size)), np.broadcast_to(xs[:, None, :], (len(boxes), size, size))
