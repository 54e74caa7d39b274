"""Evaluation shared by the trainer and ``python -m ferjax.evaluate`` (seed 003/004; SPEC §3, §10).

An evaluator runs a *logits function* (this process's rows of a normalised float32 batch →
the global batch's logits on the host) over a dataset split in order, through one or more
test-time augmentation views (:mod:`ferjax.data.tta`), and averages the class probabilities
over the views. Ensembles average the members' probabilities with weights. Metrics come
from the averaged probabilities: accuracy, macro precision/recall/F1, per-class recall, the
confusion matrix and the loss ``−log p(y)`` (the cross-entropy of the logits for one view).
Padded rows of the last batch are dropped; nothing else is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np
import scipy.optimize
import scipy.special

from ferjax import parallel
from ferjax.data import pipeline, tta
from ferjax.metrics import classification_metrics, classification_report_text
from ferjax.plots import save_confusion_matrix

LogitsFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class Scores:
    """A split's class probabilities (N, C), averaged over TTA views, and its labels (N,)."""

    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(-1)


def score_split(
    logits_fn: LogitsFn, source: Any, config: ml_collections.ConfigDict, views: Sequence[tta.View] | None = None
) -> Scores:
    """Probabilities of every example of ``source`` (in order), averaged over ``views``."""
    views = list(views or tta.views("none", config))
    probabilities, labels = [], []
    for batch in pipeline.eval_batches(source, config):
        mask = parallel.gather(batch["mask"])
        total = 0.0
        for view in views:
            logits = np.asarray(logits_fn(view(batch["image"], batch["index"])), np.float64)
            total = total + np.exp(scipy.special.log_softmax(logits, axis=-1))
        probabilities.append((total / len(views))[mask])
        labels.append(parallel.gather(batch["label"])[mask])
    return Scores(np.concatenate(probabilities), np.concatenate(labels))


def metrics(scores: Scores, class_names: Sequence[str]) -> dict:
    """Metrics of :func:`ferjax.metrics.classification_metrics` plus the mean ``−log p(y)``."""
    result = classification_metrics(scores.labels, scores.predictions, class_names)
    p_true = scores.probabilities[np.arange(len(scores.labels)), scores.labels]
    result["loss"] = float(np.mean(-np.log(np.maximum(p_true, np.finfo(np.float64).tiny))))
    return result


def ensemble(members: Sequence[Scores], weights: Sequence[float]) -> Scores:
    """The weighted mean of the members' probabilities (weights normalised to sum 1)."""
    weights = np.asarray(weights, np.float64)
    weights = weights / weights.sum()
    for member in members[1:]:
        if not np.array_equal(member.labels, members[0].labels):
            raise ValueError("ensemble members were scored on different examples")
    mixed = sum(w * m.probabilities for w, m in zip(weights, members))
    return Scores(mixed, members[0].labels)


def fit_weights(members: Sequence[Scores]) -> np.ndarray:
    """Ensemble weights on the simplex that minimise the members' mixed log-loss on ``members``'
    split (call it with *validation* scores only: never fit on test)."""
    n = len(members)
    if n == 1:
        return np.ones(1)
    probs = np.stack([m.probabilities[np.arange(len(m.labels)), m.labels] for m in members], axis=1)

    def loss(logits):
        w = scipy.special.softmax(logits)
        return -np.mean(np.log(np.maximum(probs @ w, 1e-300)))

    result = scipy.optimize.minimize(loss, np.zeros(n), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-9})
    return scipy.special.softmax(result.x)


def write_split_outputs(result: dict, scores: Scores, class_names: Sequence[str], png: Path, title: str) -> str:
    """The confusion-matrix PNG of one split, and the per-class report as text."""
    save_confusion_matrix(result["confusion_matrix"], class_names, png, title)
    return classification_report_text(scores.labels, scores.predictions, class_names)
