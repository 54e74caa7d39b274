"""Test-time augmentation views (seed 003 §6.2.2 "Test-Time Augmentation"; SPEC §3, §10).

A *view* maps a batch of prepared uint8 images ``(B, S, S, C)`` and the examples' indices
``(B,)`` to the model's float32 input. The model's class probabilities are averaged over the
views of a mode (averaging is the caller's: :mod:`ferjax.evaluation`, :class:`ferjax.run.TrainedModel`):

- ``none``: the image itself.
- ``flip``: the image and its horizontal mirror (2 views).
- ``crops``: 5 crops of the zero-padded image, the four corners and the centre, each the
  input size (the centre crop is the image itself). The padding is ``config.augment.crop_padding``,
  or ⌈S/8⌉ pixels when that is 0 (6 pixels at 48×48).
- ``crops_flip``: those 5 crops and their mirrors (10 views), the "10-crop" evaluation of
  Krizhevsky et al. 2012 that FER-2013's VGG-style nets report (Pramerdorfer & Kampel 2016).
- ``augment``: ``samples`` draws of the run's own training augmentation (``config.augment``),
  seed 003's "the same as the training-time data augmentation". Draw ``k`` of example ``i``
  uses the generator seeded with ``(seed, k, i)``, so a view does not depend on the batch size,
  the batch order or the device count.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import ml_collections
import numpy as np

from ferjax.data import augment, preprocess
from ferjax.errors import ConfigError

MODES = ("none", "flip", "crops", "crops_flip", "augment")

View = Callable[[np.ndarray, np.ndarray], np.ndarray]


def views(mode: str, config: ml_collections.ConfigDict, samples: int = 8, seed: int = 0) -> list[View]:
    """The views of TTA ``mode`` for a run with ``config`` (its image size and augmentation)."""
    if mode == "none":
        return [_plain]
    if mode == "flip":
        return [_plain, _mirrored]
    if mode in ("crops", "crops_flip"):
        pad = int(config.augment.crop_padding) or math.ceil(config.image_size / 8)
        offsets = [(pad, pad), (0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad)]
        mirrors = (False, True) if mode == "crops_flip" else (False,)
        return [
            functools.partial(_crop, pad=pad, top=top, left=left, mirror=mirror)
            for mirror in mirrors
            for top, left in offsets
        ]
    if mode == "augment":
        settings = augment.Settings.from_config(config.augment)
        if settings is None:
            raise ConfigError("--tta=augment needs the run's training augmentation, but config.augment is off")
        if samples < 1:
            raise ConfigError(f"--tta_samples={samples} must be at least 1")
        return [functools.partial(_augmented, settings=settings, seed=seed, draw=k) for k in range(samples)]
    raise ConfigError(f"unknown TTA mode {mode!r}; valid modes: {', '.join(MODES)}")


def _plain(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    return preprocess.normalize(images)


def _mirrored(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    return preprocess.normalize(images[:, :, ::-1])


def _crop(images: np.ndarray, index: np.ndarray, *, pad: int, top: int, left: int, mirror: bool) -> np.ndarray:
    size_h, size_w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    crop = padded[:, top : top + size_h, left : left + size_w]
    return preprocess.normalize(crop[:, :, ::-1] if mirror else crop)


def _augmented(images: np.ndarray, index: np.ndarray, *, settings: augment.Settings, seed: int, draw: int) -> np.ndarray:
    size = images.shape[1]
    params = [augment.sample(np.random.default_rng((seed, draw, int(i))), settings, size) for i in index]
    stacked = {key: np.stack([p[key] for p in params]) for key in params[0]}
    return augment.apply(images, stacked, settings)
