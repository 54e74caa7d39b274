"""Grad-CAM (Selvaraju et al., ICCV 2017; seed 003 §2.7, Fig. 2.8): where a class's evidence lies.

For the class score y^c (the head's un-margined logit, SPEC §4) and the feature maps A^k of one
layer: α_k^c = 1/Z Σ_ij ∂y^c/∂A^k_ij (eq. 1) and L^c = ReLU(Σ_k α_k^c A^k) (eq. 2), upsampled
bilinearly to the model's input and divided by its maximum (a map that is 0 everywhere stays 0).
The layer is any 4-D module output (:mod:`ferjax.analysis.taps`), by default the last spatial one.
The class is the predicted one unless given. One forward and one backward pass per batch, jitted
and sharded over the run's devices like :class:`ferjax.run.TrainedModel`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from PIL import Image

from ferjax import parallel, xla_options
from ferjax.analysis import taps
from ferjax.data import preprocess
from ferjax.run import TrainedModel


class Explanation(NamedTuple):
    maps: np.ndarray  # (N, S, S) float32 in [0, 1], at the model's input size
    classes: np.ndarray  # (N,) the explained class of each image
    probabilities: np.ndarray  # (N, classes) softmax of the logits
    layer: str  # module path of the tapped feature map


def grad_cam(model, fmap: taps.FeatureMap, size: int):
    """``(variables, inputs (B, S, S, C), classes (B,); -1 = predicted) -> (maps, classes, probabilities)``."""

    def explain(variables, inputs, classes):
        def logits_of(delta):
            out, feature_map = taps.apply_tapped(model, variables, inputs, fmap.path, delta)
            return out.head.logits.astype(jnp.float32), feature_map.astype(jnp.float32)

        delta = jnp.zeros((inputs.shape[0], *fmap.shape), jnp.float32)
        logits, pullback, feature_map = jax.vjp(logits_of, delta, has_aux=True)
        chosen = jnp.where(classes < 0, jnp.argmax(logits, axis=-1), classes)
        (grads,) = pullback(jax.nn.one_hot(chosen, logits.shape[-1], dtype=logits.dtype))
        alpha = jnp.mean(grads, axis=(1, 2))  # eq. 1: (B, K)
        cam = jax.nn.relu(jnp.einsum("bhwk,bk->bhw", feature_map, alpha))  # eq. 2
        cam = jax.image.resize(cam, (cam.shape[0], size, size), "bilinear")
        peak = jnp.max(cam, axis=(1, 2), keepdims=True)
        cam = jnp.where(peak > 0, cam / jnp.where(peak > 0, peak, 1.0), 0.0)
        return cam, chosen, jax.nn.softmax(logits, axis=-1)

    return explain


class GradCAM:
    """Grad-CAM of a trained run at one layer (module path; default: the last spatial feature map).

    Build it once and call it on batches of raw images (any form :meth:`TrainedModel.prepare` takes);
    :func:`overlay` lays a map over an image of any size (e.g. a face crop).
    """

    def __init__(self, trained: TrainedModel, layer: str | None = None):
        self.trained = trained
        shape = (1, trained.image_size, trained.image_size, trained.channels)
        self.layers = taps.feature_maps(trained.model, trained.variables, shape)
        self.layer = taps.choose(self.layers, layer)
        sharded, replicated = parallel.data_sharded(trained.mesh), parallel.replicated(trained.mesh)
        self._explain = jax.jit(grad_cam(trained.model, self.layer, trained.image_size),
                                in_shardings=(replicated, sharded, sharded), out_shardings=sharded,
                                compiler_options=xla_options.compiler_options(trained.config))

    def __call__(self, images, classes: Sequence[int] | int | None = None) -> Explanation:
        """Maps of ``classes`` (one per image, one for all, or None: each image's predicted class)."""
        inputs = preprocess.normalize(self.trained.prepare(images))
        wanted = np.broadcast_to(np.asarray(-1 if classes is None else classes, np.int32), (len(inputs),))
        size = self.trained.batch_size
        parts = [self._batch(inputs[s : s + size], wanted[s : s + size]) for s in range(0, max(len(inputs), 1), size)]
        maps, chosen, probabilities = (np.concatenate(column) for column in zip(*parts))
        return Explanation(maps, chosen, probabilities, self.layer.path)

    def _batch(self, inputs: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, ...]:
        n, size = len(inputs), self.trained.batch_size
        x = np.zeros((size, *inputs.shape[1:]), np.float32)
        c = np.zeros(size, np.int32)
        x[:n], c[:n] = inputs, classes
        out = self._explain(self.trained.variables, *jax.device_put((x, c), parallel.data_sharded(self.trained.mesh)))
        return tuple(np.asarray(value)[:n] for value in out)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """An image (uint8 (H, W[, 1|3]), any size) with a map in [0, 1] resized onto it: uint8 RGB (H, W, 3)."""
    image = np.asarray(image)
    image = image[..., None] if image.ndim == 2 else image
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    height, width = rgb.shape[:2]
    resized = np.asarray(Image.fromarray(np.asarray(cam, np.float32)).resize((width, height), Image.BILINEAR))
    heat = matplotlib.colormaps[colormap](np.clip(resized, 0.0, 1.0))[..., :3] * 255.0
    return np.rint((1.0 - alpha) * rgb.astype(np.float32) + alpha * heat).astype(np.uint8)
