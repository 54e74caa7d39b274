"""Procedurally drawn 48×48 grayscale faces for the built-in ``demo`` dataset (issue 2, item 5).

Each face is a set of soft-edged shapes drawn in face coordinates (u right, v down, face
half-height 1): face oval with hair, nose, two brows, two eyes (white with an iris) and a
mouth (lips around an opening). The 7 classes — FER-2013's order, angry, disgust, fear,
happy, sad, surprise, neutral — differ only by expression geometry:

    class     mouth curve  mouth open  brow angle  brow raise  eye opening
    angry        -0.06        0.00       -0.70       -0.09        0.65
    disgust      -0.13        0.06       -0.25       -0.05        0.35
    fear         -0.03        0.13       +0.55       +0.09        1.40
    happy        +0.18        0.05        0.00        0.00        0.75
    sad          -0.16        0.00       +0.65        0.00        0.85
    surprise      0.00        0.26        0.00       +0.16        1.50
    neutral       0.00        0.00        0.00        0.00        1.00

(curve: mouth-corner lift; angle: slope of the brow, positive = inner end raised). Each
example scales its class's deviation from neutral by a random intensity, adds per-feature
jitter, and draws it on a random identity (face shape, feature placement and size, skin,
hair, background), pose (in-plane rotation, translation, scale, sideways feature shift),
lighting (directional gradient, contrast) and pixel noise. Everything is vectorised numpy
and a pure function of the seed.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIZE = 48

# Columns: mouth curve, mouth opening, brow angle, brow raise, eye opening (see module doc).
_EXPRESSIONS = np.asarray(
    [
        [-0.06, 0.00, -0.70, -0.09, 0.65],
        [-0.13, 0.06, -0.25, -0.05, 0.35],
        [-0.03, 0.13, 0.55, 0.09, 1.40],
        [0.18, 0.05, 0.00, 0.00, 0.75],
        [-0.16, 0.00, 0.65, 0.00, 0.85],
        [0.00, 0.26, 0.00, 0.16, 1.50],
        [0.00, 0.00, 0.00, 0.00, 1.00],
    ],
    np.float32,
)
_NEUTRAL = _EXPRESSIONS[6]
_JITTER = np.asarray([0.02, 0.012, 0.08, 0.015, 0.08], np.float32)
_CHUNK = 256


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(N, 48, 48, 1)`` faces showing expression ``labels[i]`` (ints in 0..6)."""
    out = np.empty((len(labels), SIZE, SIZE, 1), np.uint8)
    for start in range(0, len(labels), _CHUNK):
        chunk = labels[start : start + _CHUNK]
        out[start : start + len(chunk), ..., 0] = _render_chunk(chunk, rng)
    return out


def _u(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """Uniform per-example parameter shaped (n, 1, 1) to broadcast over pixels."""
    return rng.uniform(low, high, n).astype(np.float32)[:, None, None]


def _soft(inside: np.ndarray, softness: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] from a signed 'inside' distance (>0 inside), about a pixel wide."""
    return np.clip(inside / softness + 0.5, 0.0, 1.0)


def _paint(image: np.ndarray, coverage: np.ndarray, value) -> np.ndarray:
    return image + coverage * (value - image)


def _render_chunk(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    # Expression: class geometry, random intensity, jitter.
    intensity = rng.uniform(0.8, 1.15, (n, 1)).astype(np.float32)
    expr = _NEUTRAL + intensity * (_EXPRESSIONS[labels] - _NEUTRAL)
    expr = expr + rng.normal(0, 1, (n, 5)).astype(np.float32) * _JITTER
    curve, opening, brow_angle, brow_raise, eye_open = (expr[:, k, None, None] for k in range(5))

    # Pose: pixel -> face coordinates.
    scale = _u(rng, n, 16.5, 20.5)  # pixels per face unit
    angle = _u(rng, n, -0.2, 0.2)
    cx = SIZE / 2 - 0.5 + _u(rng, n, -2.5, 2.5)
    cy = SIZE / 2 - 0.5 + _u(rng, n, -2.0, 2.0)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    px, py = xs[None] - cx, ys[None] - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * px + sin * py) / scale
    v = (-sin * px + cos * py) / scale
    soft = 1.0 / scale  # one pixel in face units
    uf = u - _u(rng, n, -0.07, 0.07)  # features shifted sideways (a hint of yaw)

    # Background with a gradient, face oval, hair.
    image = _u(rng, n, 0.0, 1.0) + _u(rng, n, -0.3, 0.3) * (xs[None] / SIZE - 0.5)
    rx = _u(rng, n, 0.72, 0.88)
    skin = _u(rng, n, 0.45, 0.8)
    face = _soft(1.0 - np.sqrt((u / rx) ** 2 + v**2), soft)
    image = _paint(image, face, skin)
    hairline = _u(rng, n, -0.85, -0.6) + 0.25 * (u / rx) ** 2
    image = _paint(image, face * _soft(hairline - v, soft), _u(rng, n, 0.0, 0.35))

    ink = _u(rng, n, 0.05, 0.25)  # darkness of brows, iris, mouth
    # Nose: a short shaded ridge.
    nose = _soft(0.03 - np.abs(uf - 0.04), soft) * _soft(0.12 - np.abs(v - 0.1), soft)
    image = _paint(image, 0.5 * nose, ink)

    # Eyes: white almond whose height follows eye_open, dark iris inside it.
    eye_x, eye_y = _u(rng, n, 0.27, 0.35), _u(rng, n, -0.28, -0.18)
    eye_w = _u(rng, n, 0.11, 0.15)
    eye_h = 0.6 * eye_w * eye_open
    du = np.abs(uf) - eye_x
    dv = v - eye_y
    eye = _soft(1.0 - np.sqrt((du / eye_w) ** 2 + (dv / np.maximum(eye_h, 0.01)) ** 2), 2 * soft / eye_w)
    image = _paint(image, eye, 0.92)
    iris = eye * _soft(0.6 * eye_w - np.sqrt(du**2 + dv**2), soft)
    image = _paint(image, iris, ink)

    # Brows: thick bars above the eyes, slope brow_angle (inner end up when positive).
    brow_y = eye_y - _u(rng, n, 0.15, 0.2) - brow_raise
    brow_half = _u(rng, n, 0.13, 0.18)
    centre_line = brow_y + brow_angle * du
    brow = _soft(_u(rng, n, 0.035, 0.05) - np.abs(v - centre_line), soft) * _soft(brow_half - np.abs(du), soft)
    image = _paint(image, brow, ink)

    # Mouth: centre curve lifted at the corners by `curve`, lips around an elliptical opening.
    mouth_y, mouth_w = _u(rng, n, 0.38, 0.5), _u(rng, n, 0.22, 0.3)
    lip = _u(rng, n, 0.03, 0.045)
    w = np.clip(uf / mouth_w, -1.0, 1.0)
    centre = mouth_y - curve * w**2
    half_open = 0.5 * np.maximum(opening, 0.0) * np.sqrt(1.0 - w**2)
    across = _soft(1.0 - np.abs(uf / mouth_w), soft / mouth_w)
    gap = np.abs(v - centre)
    lips = across * _soft(half_open + lip - gap, soft)
    image = _paint(image, lips, 0.55 * skin)
    image = _paint(image, across * _soft(half_open - gap, soft), 0.6 * ink)

    # Lighting and noise.
    light = rng.uniform(-np.pi, np.pi, n).astype(np.float32)[:, None, None]
    gradient = np.cos(light) * (xs[None] / SIZE - 0.5) + np.sin(light) * (ys[None] / SIZE - 0.5)
    image = image * (1.0 + _u(rng, n, 0.0, 0.7) * gradient) * _u(rng, n, 0.7, 1.2)
    image = image + rng.normal(0, 1, image.shape).astype(np.float32) * _u(rng, n, 0.02, 0.06)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
