"""Training-time augmentation (SPEC §3), split in two so it is both deterministic and fast.

* :func:`sample` draws one example's random parameters from a ``np.random.Generator``
  that the pipeline seeds with (config.seed, the example's global position), so the
  augmentation of an example never depends on batch size, process count or resumption.
* :func:`apply` applies a whole batch's parameters at once, vectorised in numpy: one
  combined affine warp (horizontal flip, rotation, shift, zoom, shear; bilinear, edge
  pixels extended) fused with the random crop from a zero-padded image, then random
  erasing (Zhong et al. 2020: a rectangle of 2–33 % of the area, aspect 0.3–3.3, filled
  with uniform noise in [-1, 1]). Output is normalised float32 (``preprocess.normalize``).

Settings come from ``config.augment``: ``enabled``, ``flip``, ``rotation_degrees`` (±),
``shift_fraction`` (± of the image side), ``zoom_range`` (scale in 1 ± r), ``shear_degrees``
(±), ``crop_padding`` (pixels of zero padding before a random crop back to the input size)
and ``erasing_probability``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ferjax.data import preprocess

_ERASE_AREA = (0.02, 0.33)
_ERASE_LOG_ASPECT = (np.log(0.3), np.log(1 / 0.3))


@dataclasses.dataclass(frozen=True)
class Settings:
    flip: bool = False
    rotation_degrees: float = 0.0
    shift_fraction: float = 0.0
    zoom_range: float = 0.0
    shear_degrees: float = 0.0
    crop_padding: int = 0
    erasing_probability: float = 0.0

    @classmethod
    def from_config(cls, augment) -> "Settings | None":
        """``config.augment`` to settings; None when augmentation is off or every knob is zero."""
        if not augment.enabled:
            return None
        settings = cls(
            flip=bool(augment.flip),
            rotation_degrees=float(augment.rotation_degrees),
            shift_fraction=float(augment.shift_fraction),
            zoom_range=float(augment.zoom_range),
            shear_degrees=float(augment.shear_degrees),
            crop_padding=int(augment.crop_padding),
            erasing_probability=float(augment.erasing_probability),
        )
        return None if settings == cls() else settings

    @property
    def geometric(self) -> bool:
        """Whether any flip/rotation/shift/zoom/shear/crop is on (else the warp is skipped)."""
        return dataclasses.replace(self, erasing_probability=0.0) != Settings()


def sample(rng: np.random.Generator, s: Settings, size: int) -> dict[str, np.ndarray]:
    """One example's parameters: the sampling matrix, offsets and the erasing box."""
    angle = math.radians(rng.uniform(-s.rotation_degrees, s.rotation_degrees))
    shear = math.tan(math.radians(rng.uniform(-s.shear_degrees, s.shear_degrees)))
    zoom = rng.uniform(1.0 - s.zoom_range, 1.0 + s.zoom_range)
    flip = -1.0 if (s.flip and rng.random() < 0.5) else 1.0
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # Output pixel offset from the centre (dx, dy) -> input offset:
    # rotation(angle) · shear · diag(flip, 1) / zoom.
    matrix = np.asarray([[cos * flip, cos * shear - sin], [sin * flip, sin * shear + cos]], np.float32)
    shift = rng.uniform(-s.shift_fraction, s.shift_fraction, 2) * size
    crop = rng.integers(-s.crop_padding, s.crop_padding + 1, 2)
    box = np.zeros(4, np.int32)  # y0, x0, y1, x1 (empty: no erasing)
    erase_seed = np.uint32(0)
    if s.erasing_probability > 0 and rng.random() < s.erasing_probability:
        area = rng.uniform(*_ERASE_AREA) * size * size
        aspect = np.exp(rng.uniform(*_ERASE_LOG_ASPECT))
        h = int(min(size, max(1, round(np.sqrt(area * aspect)))))
        w = int(min(size, max(1, round(np.sqrt(area / aspect)))))
        y0, x0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        box = np.asarray([y0, x0, y0 + h, x0 + w], np.int32)
        erase_seed = np.uint32(rng.integers(0, 2**32))
    return {
        "matrix": matrix,
        "shift": shift.astype(np.float32),
        "crop": crop.astype(np.int32),
        "box": box,
        "erase_seed": erase_seed,
    }


def apply(images: np.ndarray, params: dict[str, np.ndarray], s: Settings) -> np.ndarray:
    """uint8 ``(B, S, S, C)`` and stacked :func:`sample` outputs -> float32 ``(B, S, S, C)`` in [-1, 1]."""
    out = preprocess.normalize(_warp(images, params) if s.geometric else images)
    if s.erasing_probability > 0:
        _erase(out, params["box"], params["erase_seed"])
    return out


def _warp(images: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Bilinear affine resampling of a batch, edge-extended, then zero outside the crop window."""
    b, h, w, c = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys = (np.arange(h, dtype=np.float32) - cy)[None, :, None]
    xs = (np.arange(w, dtype=np.float32) - cx)[None, None, :]
    m, crop = params["matrix"], params["crop"]
    # The crop moves the output window over a zero-padded image: output (y, x) shows warped
    # (y + crop_y, x + crop_x); fold that move into the affine's constant term.
    moved = np.einsum("bij,bj->bi", m, crop.astype(np.float32)) + params["shift"] + np.float32([cx, cy])
    sx = np.clip(m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + moved[:, 0, None, None], 0, w - 1)
    sy = np.clip(m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + moved[:, 1, None, None], 0, h - 1)
    x0 = np.minimum(sx.astype(np.int32), max(w - 2, 0))
    y0 = np.minimum(sy.astype(np.int32), max(h - 2, 0))
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    rows = images.reshape(b * h * w, c).astype(np.float32)
    base = y0 * w + x0 + (np.arange(b, dtype=np.int32) * (h * w))[:, None, None]
    step_x, step_y = min(1, w - 1), w * min(1, h - 1)
    top = rows[base] * (1 - fx) + rows[base + step_x] * fx
    bottom = rows[base + step_y] * (1 - fx) + rows[base + step_y + step_x] * fx
    out = top * (1 - fy) + bottom * fy
    if crop.any():
        row_ok = (np.arange(h)[None] + crop[:, 1, None] >= 0) & (np.arange(h)[None] + crop[:, 1, None] < h)
        col_ok = (np.arange(w)[None] + crop[:, 0, None] >= 0) & (np.arange(w)[None] + crop[:, 0, None] < w)
        out *= (row_ok[:, :, None] & col_ok[:, None, :])[..., None]
    return out


def _erase(images: np.ndarray, boxes: np.ndarray, seeds: np.ndarray) -> None:
    """Fill each example's box (in place) with uniform noise in [-1, 1] from its own seed."""
    for i in np.flatnonzero(boxes[:, 2] > boxes[:, 0]):
        y0, x0, y1, x1 = (int(v) for v in boxes[i])
        noise = np.random.default_rng(int(seeds[i])).uniform(-1, 1, (y1 - y0, x1 - x0, images.shape[-1]))
        images[i, y0:y1, x0:x1] = noise.astype(np.float32)
