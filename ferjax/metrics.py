"""Classification metrics and the per-class report (seed 004: precision, recall, F1, support)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro precision/recall/F1, per-class recall and the confusion matrix."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    class_ids = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=class_ids, zero_division=0
    )
    present = support > 0  # macro averages over the classes present in this split
    return {
        "accuracy": float(np.mean(labels == predictions)) if labels.size else float("nan"),
        "macro_precision": float(np.mean(precision[present])),
        "macro_recall": float(np.mean(recall[present])),
        "macro_f1": float(np.mean(f1[present])),
        "per_class_recall": {name: float(r) for name, r in zip(class_names, recall)},
        "per_class_support": {name: int(s) for name, s in zip(class_names, support)},
        "confusion_matrix": confusion_matrix(labels, predictions, labels=class_ids).tolist(),
        "num_examples": int(labels.size),
    }


def classification_report_text(labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]) -> str:
    return classification_report(
        labels, predictions, labels=list(range(len(class_names))), target_names=list(class_names),
        digits=4, zero_division=0,
    )
