"""Deterministic evaluation splits carved from one pool of examples (SPEC §3).

* :func:`subject_folds` — subject-independent k-fold assignment (CK+): every image of a
  subject lands in the same fold. Subjects are taken by decreasing image count (ties:
  smaller subject id first) and each goes to the fold holding the fewest images so far
  (ties: lower fold index), which balances fold sizes. Depends only on the subject ids.
* :func:`stratified_holdout` — a fixed fraction of each class held out, chosen by a seeded
  permutation within each class; :func:`hold_out` applies it to a split that lacks an
  official validation split (RAF-DB; FER-2013 without PublicTest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ferjax.data.sources import SubsetSource, labels_of
from ferjax.errors import ConfigError


def subject_folds(subjects: np.ndarray, num_folds: int) -> np.ndarray:
    """Fold index (0..num_folds-1) of every example, given each example's subject id."""
    ids, counts = np.unique(subjects, return_counts=True)
    if not 1 <= num_folds <= len(ids):
        raise ConfigError(f"num_folds={num_folds} must be between 1 and the number of subjects ({len(ids)})")
    fold_of_subject: dict[int, int] = {}
    load = np.zeros(num_folds, np.int64)
    for position in np.lexsort((ids, -counts)):
        fold = int(np.argmin(load))
        fold_of_subject[int(ids[position])] = fold
        load[fold] += counts[position]
    return np.asarray([fold_of_subject[int(s)] for s in subjects], np.int64)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) example indices, both sorted; ``round(fraction·n_c)`` held out per class."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation_fraction={fraction} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        held.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def hold_out(train: Any, fraction: float) -> tuple[Any, Any | None, str]:
    """(train, validation, note): a stratified ``fraction`` of ``train`` (seed 0) becomes validation.

    With nothing held out (``fraction`` 0, or too few images) train is returned whole and
    validation is None. The note says which, for the run's notes.
    """
    kept, held = stratified_holdout(labels_of(train), fraction)
    share = f"{fraction:.0%} of each class"
    if not len(held):
        return train, None, f"no images held out as validation ({share}): model selection uses the last epoch"
    note = f"{len(held)} train images ({share}, fixed seed) held out for model selection as validation; train uses the rest"
    return SubsetSource(train, kept), SubsetSource(train, held), note
