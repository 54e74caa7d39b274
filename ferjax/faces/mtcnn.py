"""MTCNN face detection and 5-point landmarks (Zhang et al. 2016, "Joint face detection and
alignment using multi-task cascaded convolutional networks"), in JAX.

Stage 1: an image pyramid (scales ``(12 / min_face_size) · 0.709^k``, area-resized, pixels
normalised to ``(x - 127.5) / 128``) through the fully convolutional P-Net; windows scoring
above 0.6 become boxes, calibrated by their regression offsets, reduced by NMS at IoU 0.5 per
level and 0.7 across levels, and squared. Stage 2: 24×24 patches of those boxes through R-Net;
score > 0.7, calibration, NMS 0.7, squared. Stage 3: 48×48 patches through O-Net; landmarks are
read in the stage-2 box, score > 0.8, calibration, NMS 0.7 over the smaller box's area ('min').
The defaults are those of the ``mtcnn`` 1.0 package whose weights this uses (Zhang et al.'s
own demo used 0.7 for the last score threshold).

Batching and compilation: images are zero-padded to sides that are multiples of ``BUCKET``
pixels and stacked; all images of one padded size go through the whole pyramid (area resizes,
the levels packed into one canvas, P-Net) in one jitted call that compiles once per (padded
size, batch size rounded up to a power of two). Only windows wholly inside the real image
count, so the padding never changes a result. R-Net and O-Net each run once per
``detect_batch`` on the patches of every image, padded to a power-of-two count.
NMS, thresholds and box arithmetic (data-dependent sizes) run in NumPy on the host.
"""

from __future__ import annotations

import functools
import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.faces import boxes as B
from ferjax.faces import pyramid
from ferjax.faces.detector import EXTRA_HINT, Detector, Face, MissingExtra
from ferjax.faces.mtcnn_nets import ONet, PNet, RNet, load_params
from ferjax.faces.sampling import bilinear, box_grid

BUCKET = 128  # padded image sides are multiples of this
_MIN_PATCHES = 16  # smallest R-Net/O-Net batch (then powers of two)
_GRAY = 127.5  # the normalisation's zero: patch pixels outside the image
_PNET, _RNET, _ONET = PNet(), RNet(), ONet()


def _normalise(pixels):
    """(x − 127.5) / 128, the networks' input scale."""
    return (pixels.astype(jnp.float32) - _GRAY) / 128.0


@functools.partial(jax.jit, static_argnames="levels")
def _pnet_pyramid(params, images, levels):
    """P-Net ``(offsets (B, h, w, 4), probability (B, h, w))`` on the canvas packing every pyramid
    level (``levels``: (height, width)s, laid out by ``pyramid.layout``) of uint8 ``images``."""
    x = _normalise(images)
    offsets, (height, width) = pyramid.layout(levels)
    canvas = jnp.zeros((x.shape[0], height, width, 3), jnp.float32)
    for (top, left), (h, w) in zip(offsets, levels):
        canvas = canvas.at[:, top : top + h, left : left + w].set(pyramid.area_resize(x, h, w))
    return _PNET.apply(params, canvas)


@jax.jit
def _rnet(params, patches):
    return _RNET.apply(params, _normalise(patches))


@jax.jit
def _onet(params, patches):
    return _ONET.apply(params, _normalise(patches))


def _pow2(n: int, least: int = 1) -> int:
    return max(least, 1 << max(0, n - 1).bit_length())


class MTCNN(Detector):
    """The MTCNN cascade. ``thresholds``: P-Net, R-Net, O-Net face probabilities a box must exceed;
    ``nms``: IoU thresholds for P-Net per level, P-Net across levels, R-Net, O-Net ('min' overlap)."""

    def __init__(
        self,
        min_face_size: float = 20.0,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
        max_side: int = 1024,
    ):
        super().__init__(max_side)
        if min_face_size < pyramid.CELL:
            raise ValueError(f"min_face_size must be >= {pyramid.CELL} pixels (the pyramid only shrinks), got {min_face_size}")
        if not 0 < scale_factor < 1:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if any(importlib.util.find_spec(module) is None for module in ("mtcnn", "joblib", "lz4")):
            raise MissingExtra(EXTRA_HINT)
        self.min_face_size, self.scale_factor = float(min_face_size), float(scale_factor)
        self.thresholds, self.nms = tuple(thresholds), tuple(nms)
        self._params = {name: jax.device_put(load_params(name)) for name in ("pnet", "rnet", "onet")}

    def _detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        candidates = self._propose(images)
        candidates = self._refine(images, candidates)
        return self._output(images, candidates)

    def _levels(self, height: int, width: int) -> tuple[tuple[int, int], ...]:
        scales = pyramid.scales(min(height, width), self.min_face_size, self.scale_factor)
        return tuple((pyramid.level_size(height, s), pyramid.level_size(width, s)) for s in scales)

    def _propose(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 1: squared candidate boxes ``(N, 4)`` per image."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            padded = tuple(BUCKET * math.ceil(side / BUCKET) for side in image.shape[:2])
            groups.setdefault(padded, []).append(i)
        out: list[np.ndarray] = [np.zeros((0, 4))] * len(images)
        for (hb, wb), members in groups.items():
            stack = np.zeros((_pow2(len(members)), hb, wb, 3), np.uint8)
            for slot, i in enumerate(members):
                h, w = images[i].shape[:2]
                stack[slot, :h, :w] = images[i]
            levels = self._levels(hb, wb)
            offsets, prob = jax.device_get(_pnet_pyramid(self._params["pnet"], stack, levels=levels))
            for slot, i in enumerate(members):
                found = self._windows(offsets[slot], prob[slot], images[i].shape[:2], (hb, wb), levels)
                found = found[B.nms(found[:, :4], found[:, 4], self.nms[1])]
                out[i] = B.square(found[:, :4])
        return out

    def _windows(self, offsets, prob, size, padded, levels) -> np.ndarray:
        """P-Net windows above threshold lying wholly inside one level's part of the real image:
        calibrated boxes + score ``(N, 5)`` in image pixels, after NMS within each level."""
        gy, gx = np.nonzero(prob > self.thresholds[0])
        found = [np.zeros((0, 5))]
        for (top, left), (h, w) in zip(pyramid.layout(levels)[0], levels):
            sy, sx = h / padded[0], w / padded[1]
            y, x = 2 * gy - top, 2 * gx - left  # window corner in the level
            inside = (y >= 0) & (x >= 0)
            inside &= (y + pyramid.CELL <= math.floor(size[0] * sy)) & (x + pyramid.CELL <= math.floor(size[1] * sx))
            y, x, cy, cx = y[inside], x[inside], gy[inside], gx[inside]
            windows = np.stack([x / sx, y / sy, (x + pyramid.CELL) / sx, (y + pyramid.CELL) / sy], axis=1)
            level = np.concatenate([B.regress(windows, offsets[cy, cx]), prob[cy, cx, None]], axis=1)
            found.append(level[B.nms(level[:, :4], level[:, 4], self.nms[0])])
        return np.concatenate(found)

    def _run(self, net, params, images: list[np.ndarray], candidates: list[np.ndarray], size: int):
        """``net`` on the ``size``×``size`` patches of every image's candidates, in one call; its outputs
        split back per image (NumPy)."""
        counts = [len(c) for c in candidates]
        total = sum(counts)
        patches = np.full((_pow2(total, _MIN_PATCHES), size, size, 3), _GRAY, np.float32)
        start = 0
        for image, found in zip(images, candidates):
            ys, xs = box_grid(found, size)
            patches[start : start + len(found)] = bilinear(image, ys, xs, fill=_GRAY)
            start += len(found)
        outputs = [np.asarray(o)[:total] for o in jax.device_get(net(params, patches))]
        bounds = np.cumsum([0] + counts)
        return [[o[a:b] for o in outputs] for a, b in zip(bounds[:-1], bounds[1:])]

    def _refine(self, images: list[np.ndarray], candidates: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 2: R-Net-checked, calibrated, squared boxes ``(N, 4)`` per image."""
        if not any(len(c) for c in candidates):
            return candidates
        out = []
        for found, (offsets, prob) in zip(candidates, self._run(_rnet, self._params["rnet"], images, candidates, 24)):
            keep = prob > self.thresholds[1]
            found, prob = B.regress(found[keep], offsets[keep]), prob[keep]
            out.append(B.square(found[B.nms(found, prob, self.nms[2])]))
        return out

    def _output(self, images: list[np.ndarray], candidates: list[np.ndarray]) -> list[list[Face]]:
        """Stage 3: O-Net-checked faces with landmarks, best first."""
        if not any(len(c) for c in candidates):
            return [[] for _ in images]
        out = []
        for found, (offsets, marks, prob) in zip(candidates, self._run(_onet, self._params["onet"], images, candidates, 48)):
            size = found[:, 2:4] - found[:, 0:2]
            landmarks = found[:, None, 0:2] + np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None, :]
            keep = prob > self.thresholds[2]
            found, prob, landmarks = B.regress(found[keep], offsets[keep]), prob[keep], landmarks[keep]
            kept = B.nms(found, prob, self.nms[3], mode="min")
            out.append([Face(tuple(map(float, found[k])), float(prob[k]), landmarks[k].astype(np.float64)) for k in kept])
        return out
