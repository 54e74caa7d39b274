"""The geometry of a run's embeddings: class centres, angles, t-SNE (seed 001 slides, seed 002 §3).

The embedding is the head's input (``ModelOutput.embedding``). A class's *centre* is a unit vector:
for heads with a weight vector per class (the cosine and angular heads, "kernel" of shape (D, C)),
its normalised weight W_j/‖W_j‖ — the class centres of seed 002; for the linear head, the
normalised mean of the class's normalised embeddings. The angle between an embedding x and a
centre is arccos(x̂·ĉ_j): the *target* angle for j = its label, the *non-target* angles for the
other classes. Margin losses widen the gap between the two distributions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.manifold import TSNE

from ferjax.data import pipeline
from ferjax.data.sources import SubsetSource
from ferjax.run import TrainedModel


def sample(trained: TrainedModel, source: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` examples of a split, drawn without replacement by ``seed``, in split order:
    prepared uint8 images (as the run's evaluation sees them), labels and their indices."""
    index = np.sort(np.random.default_rng(seed).permutation(len(source))[:n])
    images, labels = [], []
    for batch in pipeline.eval_batches(SubsetSource(source, index), trained.config):
        images.append(batch["image"][batch["mask"]])
        labels.append(batch["label"][batch["mask"]])
    return np.concatenate(images), np.concatenate(labels).astype(np.int64), index


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_centres(trained: TrainedModel, embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, str]:
    """Unit class centres (C, D) and what they are: "head weights" or "class means"."""
    head = trained.variables["params"]["head"]
    if "kernel" in head:  # CosineHead / AngularHead: one weight column per class
        return unit(np.asarray(head["kernel"]).T), "head weights"
    x = unit(embeddings)
    means = np.stack([x[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(x.shape[1])
                      for c in range(len(trained.base_class_names))])
    return unit(means), "class means"


def angles(embeddings: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target angles (N,) and non-target angles (N·(C-1),) in degrees."""
    cosine = np.clip(unit(embeddings) @ centres.T, -1.0, 1.0)
    degrees = np.degrees(np.arccos(cosine))
    target = np.zeros_like(degrees, bool)
    target[np.arange(len(labels)), labels] = True
    return degrees[target], degrees[~target]


def tsne(embeddings: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE (van der Maaten & Hinton 2008; scikit-learn, PCA initialisation) of (N, D) embeddings."""
    perplexity = min(30.0, max(1.0, (len(embeddings) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(np.asarray(embeddings, np.float64))
