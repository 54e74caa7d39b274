"""New expression classes from a few examples (seed 002 §3, eq. 4; SPEC §4 "Class centres").

A run trained with a cosine head (AM-Softmax/CosFace/LMCL, ArcFace, DAM, DAMS) scores an
embedding x by s·cos θ_j = s·x̂·Ŵ_j: the normalised weight columns Ŵ_j are the class centres.
A new class's centre is the normalised mean of its examples' normalised embeddings,
c = normalize(Σ_i x̂_i / n) (seed 002 eq. 4, with the normalisation of SPEC §4; cosines do not
depend on the centre's length). It is appended to the centres without any training.

Prediction over the original and enrolled classes is the arg-max cosine, or "unknown" when the
best cosine is below a threshold t (0.6 in seed 002). ferjax writes that rule as one more logit:
the enrolled model's logits are ``[s·cos θ_1 … s·cos θ_{C+k}, s·t]`` for the class names
``[original…, enrolled…, "unknown"]``, so the arg-max is "unknown" exactly when every cosine is
below t, and softmax probabilities, TTA averaging and ensembles work unchanged.

A run's enrollment is ``enrolled.json`` (names, n, source files, dates, the threshold and how
it was chosen, and the SHA-256 of the centres) plus ``enrolled.npz`` (the centres, (k, D)
float32). The arrays are written first and the JSON last, both atomically, so a reader sees the
old enrollment or the new one; a mismatch between the two is reported as damage.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ferjax import files, losses
from ferjax.errors import ConfigError, RunError

ENROLLED_FILE = "enrolled.json"
CENTRES_FILE = "enrolled.npz"
UNKNOWN = "unknown"
DEFAULT_THRESHOLD = 0.6  # seed 002 §3: "greater than the set threshold of 0.6"
COSINE_LOSSES = "amsoftmax/cosface/lmcl, arcface, dam_softmax, dams"


@dataclasses.dataclass
class Enrollment:
    """Enrolled classes of one run: their centres (k, D) and the open-set threshold."""

    entries: list[dict]  # per class: name, n, sources, date
    centres: np.ndarray  # (k, D) float32, unit rows, in the order of ``entries``
    threshold: float = DEFAULT_THRESHOLD
    threshold_rule: str = f"default {DEFAULT_THRESHOLD} (seed 002)"

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.entries]

    def logits(self, base_logits: np.ndarray, embeddings: np.ndarray, scale: float) -> np.ndarray:
        """The run's logits ``s·cos θ`` (N, C) extended by the enrolled classes and "unknown": (N, C+k+1)."""
        cosine = np.clip(unit(embeddings) @ self.centres.T, -1.0, 1.0) if len(self.entries) else np.zeros((len(embeddings), 0))
        reject = np.full((len(embeddings), 1), scale * self.threshold)
        return np.concatenate([base_logits, scale * cosine, reject], axis=1).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as the cosine head normalises them (√(Σx² + 1e-12))."""
    x = np.asarray(x, np.float32)
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + 1e-12)


def centre(embeddings: np.ndarray) -> np.ndarray:
    """Seed 002 eq. 4: the normalised mean of the normalised embeddings (n, D) → (D,)."""
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"need embeddings (n >= 1, D), got shape {embeddings.shape}")
    return unit(unit(embeddings).mean(axis=0))


def cosine_head(config, params: dict, where: str | Path) -> tuple[np.ndarray, float]:
    """The run's class centres Ŵ (C, D) and scale s; a clear error for a head without centres."""
    objective = losses.make_objective(config)
    if objective.head != "cosine":
        raise RunError(f"{where}: enrollment needs a run trained with a cosine head ({COSINE_LOSSES}); "
                       f"this run's loss {config.loss!r} has a {objective.head} head")
    kernel = np.asarray(params["head"]["kernel"], np.float32)  # (D, C)
    return unit(kernel.T), float(objective.head_kwargs["scale"])


# ---------------------------------------------------------------------------- threshold


def parse_threshold(text: str) -> tuple[str, float]:
    """``--threshold``: a cosine in (-1, 1) → ("value", t), or ``calibrate:FAR`` → ("calibrate", FAR)."""
    kind, _, value = text.partition(":") if text.startswith("calibrate") else ("value", "", text)
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind == "calibrate" and 0.0 < number < 1.0:
        return kind, number
    if kind == "value" and -1.0 < number < 1.0:
        return kind, number
    raise ConfigError(f"--threshold={text!r}: give a cosine in (-1, 1) such as 0.6, or calibrate:FAR with 0 < FAR < 1 "
                      "(e.g. calibrate:0.05)")


def calibrate(cosines: np.ndarray, labels: np.ndarray, far: float) -> float:
    """The threshold whose false-accept rate on known classes is ``far``.

    Each validation image of a known class is made an impostor by hiding its own class: its best
    cosine to the *other* centres is what it would score if its class had never been trained or
    enrolled. The threshold is the (1 − FAR) quantile of those scores, so a share FAR of such
    images would be accepted (as the wrong class) and the rest answered "unknown".
    """
    cosines = np.asarray(cosines, np.float64)
    hidden = cosines.copy()
    hidden[np.arange(len(labels)), np.asarray(labels)] = -np.inf
    impostor = hidden.max(axis=1)
    return float(np.quantile(impostor, 1.0 - far, method="higher"))


# ---------------------------------------------------------------------------- files


def read(workdir: str | Path) -> Enrollment | None:
    """A run's enrollment, or None when it has none; damage is an error, never ignored."""
    path = Path(workdir) / ENROLLED_FILE
    if not path.exists():
        return None
    arrays = Path(workdir) / CENTRES_FILE
    try:
        record = json.loads(path.read_text())
        blob = arrays.read_bytes()
        if hashlib.sha256(blob).hexdigest() != record["centres_sha256"]:
            raise ValueError(f"{CENTRES_FILE} does not match the digest in {ENROLLED_FILE}")
        centres = np.load(io.BytesIO(blob))["centres"]
        entries = list(record["classes"])
        if centres.shape[0] != len(entries):
            raise ValueError(f"{len(entries)} classes but {centres.shape[0]} centres")
        return Enrollment(entries, centres.astype(np.float32), float(record["threshold"]), str(record["threshold_rule"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"{path}: damaged enrollment ({type(error).__name__}: {error}); "
                       f"remove {ENROLLED_FILE} and {CENTRES_FILE} to start again") from None


def write(workdir: str | Path, enrollment: Enrollment) -> None:
    """Write the centres, then the JSON that names their digest (each atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, centres=np.asarray(enrollment.centres, np.float32).reshape(len(enrollment.entries), -1))
    blob = buffer.getvalue()
    files.write_atomically(Path(workdir) / CENTRES_FILE, blob)
    record = {"classes": enrollment.entries, "threshold": enrollment.threshold, "threshold_rule": enrollment.threshold_rule,
              "centres_sha256": hashlib.sha256(blob).hexdigest()}
    files.write_atomically(Path(workdir) / ENROLLED_FILE, json.dumps(record, indent=2) + "\n")


def add(enrollment: Enrollment | None, name: str, embeddings: np.ndarray, sources: Sequence[str],
        taken: Sequence[str]) -> Enrollment:
    """``enrollment`` with class ``name`` added from its examples' embeddings (n, D)."""
    enrollment = enrollment or Enrollment([], np.zeros((0, embeddings.shape[-1]), np.float32))
    if not name or name == UNKNOWN:
        raise ConfigError(f"--class_name={name!r}: give a class name other than {UNKNOWN!r}")
    if name in taken or name in enrollment.names:
        raise ConfigError(f"--class_name={name!r}: the run already has a class of that name "
                          f"({'trained' if name in taken else 'enrolled'}); --remove={name} first to re-enroll it")
    entry = {"name": name, "n": int(len(embeddings)), "sources": [str(s) for s in sources],
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    centres = np.concatenate([enrollment.centres.reshape(-1, embeddings.shape[-1]), centre(embeddings)[None]])
    return dataclasses.replace(enrollment, entries=[*enrollment.entries, entry], centres=centres)


def remove(enrollment: Enrollment | None, name: str) -> Enrollment:
    names = enrollment.names if enrollment else []
    if name not in names:
        raise ConfigError(f"--remove={name!r}: not an enrolled class (enrolled: {', '.join(names) or 'none'})")
    keep = [i for i, n in enumerate(names) if n != name]
    return dataclasses.replace(enrollment, entries=[enrollment.entries[i] for i in keep], centres=enrollment.centres[keep])
