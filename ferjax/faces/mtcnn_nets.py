"""MTCNN's three networks in Flax and their pretrained weights (Zhang et al. 2016, Fig. 2).

The weights are the ones the ``mtcnn`` 1.0 pip package ships (``mtcnn/assets/weights/*.lz4``:
joblib-pickled lists of NumPy arrays in Keras order — conv kernels HWIO, biases, PReLU
slopes, dense kernels ``(in, out)``). They are read by path, without importing the package
(which imports TensorFlow). Layouts follow that package's Keras models, which take images
row-major (height, width), not transposed as the original Caffe/MATLAB release: VALID
convolutions, per-channel PReLU, TensorFlow-style ``SAME`` max-pooling (the extra row/column
at the end), and for R-Net/O-Net a (height, width) swap before flattening. Convolutions are
``ferjax.models.conv.Conv`` (``nn.Conv``'s function; on CPU its 1×1 and small-map routing made
P-Net on a 308×308 level 16 → 13 ms and O-Net on 64 patches 68 → 39 ms).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ferjax.models import conv

class PReLU(nn.Module):
    """``max(x, 0) + alpha · min(x, 0)`` with one slope per channel (last axis)."""

    @nn.compact
    def __call__(self, x):
        alpha = self.param("alpha", nn.initializers.constant(0.25), (x.shape[-1],))
        return jnp.where(x >= 0, x, alpha * x)


def _conv_block(x, features: int, kernel: int, index: int):
    x = conv.Conv(features, (kernel, kernel), padding="VALID", name=f"conv{index}")(x)
    return PReLU(name=f"prelu{index}")(x)


class PNet(nn.Module):
    """Proposal net, fully convolutional: 12×12 windows at stride 2 → (box offsets (…, 4), face probability (…))."""

    @nn.compact
    def __call__(self, x):
        x = _conv_block(x, 10, 3, 1)
        x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
        x = _conv_block(x, 16, 3, 2)
        x = _conv_block(x, 32, 3, 3)
        offsets = conv.Conv(4, (1, 1), name="conv4_1")(x)
        logits = conv.Conv(2, (1, 1), name="conv4_2")(x)
        return offsets, nn.softmax(logits)[..., 1]


class RNet(nn.Module):
    """Refine net on 24×24 patches → (box offsets (N, 4), face probability (N,))."""

    @nn.compact
    def __call__(self, x):
        x = _conv_block(x, 28, 3, 1)
        x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        x = _conv_block(x, 48, 3, 2)
        x = nn.max_pool(x, (3, 3), (2, 2), padding="VALID")
        x = _conv_block(x, 64, 2, 3)
        x = jnp.swapaxes(x, 1, 2).reshape(x.shape[0], -1)
        x = PReLU(name="prelu4")(nn.Dense(128, name="fc4")(x))
        return nn.Dense(4, name="fc5_1")(x), nn.softmax(nn.Dense(2, name="fc5_2")(x))[:, 1]


class ONet(nn.Module):
    """Output net on 48×48 patches → (box offsets (N, 4), landmarks (N, 10) as x1..x5 then y1..y5
    in box fractions, face probability (N,))."""

    @nn.compact
    def __call__(self, x):
        x = _conv_block(x, 32, 3, 1)
        x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        x = _conv_block(x, 64, 3, 2)
        x = nn.max_pool(x, (3, 3), (2, 2), padding="VALID")
        x = _conv_block(x, 64, 3, 3)
        x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
        x = _conv_block(x, 128, 2, 4)
        x = jnp.swapaxes(x, 1, 2).reshape(x.shape[0], -1)
        x = PReLU(name="prelu5")(nn.Dense(256, name="fc5")(x))
        offsets, landmarks = nn.Dense(4, name="fc6_1")(x), nn.Dense(10, name="fc6_2")(x)
        return offsets, landmarks, nn.softmax(nn.Dense(2, name="fc6_3")(x))[:, 1]


# Parameter names in the order of each weights file's arrays (Keras' layer order).
_LAYOUT = {
    "pnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4_1", "conv4_2"],
    "rnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "fc5_1", "fc5_2"],
    "onet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5", "fc6_1", "fc6_2", "fc6_3"],
}


def weights_dir() -> Path:
    """``mtcnn/assets/weights`` of the installed ``mtcnn`` package, found without importing it."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mtcnn")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


def load_params(name: str) -> dict:
    """Flax params of ``name`` (pnet | rnet | onet) from the package's ``<name>.lz4``."""
    import joblib  # with lz4, part of the predict extra

    arrays = list(joblib.load(weights_dir() / f"{name}.lz4"))
    params = {}
    for layer in _LAYOUT[name]:
        if layer.startswith("prelu"):
            params[layer] = {"alpha": np.asarray(arrays.pop(0), np.float32).reshape(-1)}
        else:
            params[layer] = {"kernel": np.asarray(arrays.pop(0), np.float32), "bias": np.asarray(arrays.pop(0), np.float32)}
    if arrays:
        raise ValueError(f"{name}.lz4 has {len(arrays)} arrays more than MTCNN's {name}")
    return {"params": params}
