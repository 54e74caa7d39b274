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
count, so the padding never changes a result. R-Net and O-Net see the patches of every image
of a ``detect_batch`` together, in batches of 64 (and 16 for the rest): a fixed size compiles
once, and on XLA:CPU R-Net cost 120–160 µs a patch in batches of 32–128 but 260–280 µs in
batches of 256–512. Patches are cut with OpenCV's ``warpAffine`` (bilinear, 1/32-pixel
positions; 7× faster than NumPy gathers for 660 boxes).
NMS, thresholds and box arithmetic (data-dependent sizes) run in NumPy on the host.
"""

from __future__ import annotations

import functools
import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np

try:
    import cv2
except ImportError:  # the predict extra is missing: MTCNN() says so
    cv2 = None

from ferjax.faces import boxes as B
from ferjax.faces import pyramid
from ferjax.faces.detector import EXTRA_HINT, Detector, Face, MissingExtra
from ferjax.faces.mtcnn_nets import ONet, PNet, RNet, load_params

BUCKET = 128  # padded image sides are multiples of this
_CHUNKS = (64, 16)  # R-Net/O-Net batch sizes: two compiles per network, whatever the patch count
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


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _chunks(n: int) -> list[int]:
    """Batch sizes, all from ``_CHUNKS``, that cover ``n`` patches with at most 15 padding ones."""
    large, small = _CHUNKS
    sizes = [large] * (n // large)
    rest = n % large
    return sizes + ([large] if rest > large - small else [small] * math.ceil(rest / small))


def _patches(image: np.ndarray, found: np.ndarray, size: int) -> np.ndarray:
    """float32 ``(N, size, size, 3)``: each box resampled bilinearly (pixel centres), gray outside."""
    pixels = image.astype(np.float32)
    out = np.empty((len(found), size, size, 3), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(found):
        sx, sy = (x1 - x0) / size, (y1 - y0) / size
        to_source = np.array([[sx, 0, x0 + sx / 2 - 0.5], [0, sy, y0 + sy / 2 - 0.5]])
        out[k] = cv2.warpAffine(pixels, to_source, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(_GRAY,) * 3)
    return out


class MTCNN(Detector):
    """The MTCNN cascade. ``thresholds``: P-Net, R-Net, O-Net face probabilities a box must exceed;
    ``nms``: IoU thresholds for P-Net per level, P-Net across levels, R-Net, O-Net ('min' overlap);
    ``max_side``, ``border``: see ``ferjax.faces.detector`` (0.1 costs 1.2× the pixels)."""

    def __init__(
        self,
        min_face_size: float = 20.0,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
        max_side: int = 1024,
        border: float = 0.1,
    ):
        super().__init__(max_side, border)
        if min_face_size < pyramid.CELL:
            raise ValueError(f"min_face_size must be >= {pyramid.CELL} pixels (the pyramid only shrinks), got {min_face_size}")
        if not 0 < scale_factor < 1:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if cv2 is None or any(importlib.util.find_spec(module) is None for module in ("mtcnn", "joblib", "lz4")):
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
        """``net`` on the ``size``×``size`` patches of every image's candidates, in ``_CHUNKS``-sized
        calls; its outputs (NumPy) split back per image."""
        patches = np.concatenate([_patches(image, found, size) for image, found in zip(images, candidates)])
        sizes = _chunks(len(patches))
        patches = np.concatenate([patches, np.full((sum(sizes) - len(patches), size, size, 3), _GRAY, np.float32)])
        starts = np.cumsum([0] + sizes)
        calls = [net(params, patches[a:b]) for a, b in zip(starts[:-1], starts[1:])]  # dispatched asynchronously
        outputs = [np.concatenate(parts) for parts in zip(*jax.device_get(calls))]
        bounds = np.cumsum([0] + [len(c) for c in candidates])
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
