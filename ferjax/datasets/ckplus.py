"""CK+ / Extended Cohn-Kanade (SPEC §3) with subject-independent k-fold cross-validation.

Accepted layouts (``config.datasets.ckplus.layout``; "auto" tries original, then CK+48):

* ``original`` in ``<data_dir>/ckplus/``: ``cohn-kanade-images/S###/###/*.png`` and
  ``Emotion/S###/###/*_emotion.txt`` (one code per labelled sequence, 1 anger .. 7 surprise).
  The last 3 frames of each labelled sequence get its label; with ``include_neutral`` the
  first frame is added as neutral. Frames are made gray, centre-cropped to a square and
  resized to ``frame_size`` (no face detection).
* ``ck48`` in ``<data_dir>/ckplus48/CK+48/`` (or ``ckplus48/``, ``ckplus/CK+48/``):
  ``<class>/S###_###_########.png``, 48×48 gray, classes anger, contempt, disgust, fear,
  happy, sadness, surprise (no neutral).

Class set: 7 = anger, contempt, disgust, fear, happy, sadness, surprise (CK+ codes 1–7
minus 1); with ``include_neutral`` 8 = neutral first, then those (the CK+ codes 0–7).
All images are prepared as one pool with their subject; at load time
:func:`ferjax.data.partition.subject_folds` assigns subjects to ``num_folds`` folds:
test = fold ``fold``, validation = fold ``(fold + 1) % num_folds`` (when
``validation_fold``; subject-disjoint too), train = the other folds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ferjax import data
from ferjax.data import images, partition, paths, preprocess, tfds_cache
from ferjax.data.badfiles import BadFiles
from ferjax.data.sources import SubsetSource
from ferjax.errors import ConfigError, DataError

EMOTIONS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_FILE = re.compile(r"^S(\d+)_(\d+)_(\d+)\.\w+$")
_LAST_FRAMES = 3

class CKPlusBuilder(tfds_cache.PlannedBuilder):
    """CK+ frames with subject, sequence and frame numbers (for subject-independent folds)."""

    name = "ferjax_ckplus"
    EXTRA_FEATURES = {"subject": np.int32, "sequence": np.int32, "frame": np.int32}


def class_names(include_neutral: bool) -> tuple[str, ...]:
    return (("neutral",) if include_neutral else ()) + EMOTIONS


def _missing(root: Path) -> DataError:
    return DataError(
        f"CK+ not found: put cohn-kanade-images/S###/###/*.png and Emotion/S###/###/*_emotion.txt in {root}/ckplus/, "
        f"or the CK+48 folders <class>/S###_###_########.png in {root}/ckplus48/CK+48/ "
        "(set config.data_dir or $FERJAX_DATA_DIR to another folder)"
    )


def find(root: Path, layout: str) -> tuple[str, Path]:
    original = root / "ckplus"
    ck48 = paths.first_existing(root / "ckplus48" / "CK+48", root / "ckplus" / "CK+48", root / "ckplus48")
    found = {
        "original": original if (original / "cohn-kanade-images").is_dir() and (original / "Emotion").is_dir() else None,
        "ck48": ck48 if ck48 is not None and any((ck48 / name).is_dir() for name in EMOTIONS) else None,
    }
    if layout not in ("auto", *found):
        raise ConfigError(f"config.datasets.ckplus.layout={layout!r}; valid: auto, original, ck48")
    for name in ("original", "ck48") if layout == "auto" else (layout,):
        if found[name] is not None:
            return name, found[name]
    raise _missing(root)


def _ids(path: Path) -> tuple[int, int, int] | None:
    match = _FILE.match(path.name)
    return tuple(int(g) for g in match.groups()) if match else None


def plan_ck48(folder: Path, options) -> tfds_cache.Plan:
    if options.include_neutral:
        raise ConfigError("config.datasets.ckplus.include_neutral=True needs the original layout; CK+48 has no neutral frames")
    listing = BadFiles("ckplus", options.skip_bad_files)
    items = []  # (path, label, (subject, sequence, frame))
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if class_dir.name.lower() not in EMOTIONS:
            listing.report(f"{class_dir}: unknown class folder {class_dir.name!r}; expected {', '.join(EMOTIONS)}")
            continue
        files = images.image_files(class_dir)
        if not files:
            listing.report(f"{class_dir}: empty class folder")
        for path in files:
            ids = _ids(path)
            if ids is None:
                listing.report(f"{path}: file name must be S<subject>_<sequence>_<frame>.png")
                continue
            items.append((path, EMOTIONS.index(class_dir.name.lower()), ids))

    def generate(bad: BadFiles) -> dict[str, tfds_cache.Examples]:
        bad.count += listing.count
        return {"pool": _decode(items, bad, size=48)}

    identity = tfds_cache.identity("ck48", options.skip_bad_files, str(folder), files=[p for p, _, _ in items])
    return tfds_cache.Plan("ck48", identity, (48, 48, 1), class_names(False), generate)


def plan_original(folder: Path, options) -> tfds_cache.Plan:
    listing = BadFiles("ckplus", options.skip_bad_files)
    offset = 0 if options.include_neutral else -1
    items = []
    for emotion_file in sorted((folder / "Emotion").glob("S*/*/*_emotion.txt")):
        subject_dir, sequence_dir = emotion_file.parent.parent.name, emotion_file.parent.name
        code = _read_code(emotion_file)
        if code is None:
            listing.report(f"{emotion_file}: expected one emotion code 1-7 (e.g. '3.0000000e+00')")
            continue
        frames_dir = folder / "cohn-kanade-images" / subject_dir / sequence_dir
        frames = [p for p in images.image_files(frames_dir) if _ids(p) is not None] if frames_dir.is_dir() else []
        if not frames:
            listing.report(f"{frames_dir}: no S###_###_########.png frames for {emotion_file.name}")
            continue
        for path in frames[-_LAST_FRAMES:]:
            items.append((path, code + offset, _ids(path)))
        if options.include_neutral and len(frames) > _LAST_FRAMES:
            items.append((frames[0], 0, _ids(frames[0])))
    size = int(options.frame_size)

    def generate(bad: BadFiles) -> dict[str, tfds_cache.Examples]:
        bad.count += listing.count
        return {"pool": _decode(items, bad, size=size, crop=True)}

    identity = tfds_cache.identity(
        "original", options.skip_bad_files, options.include_neutral, size, str(folder), files=[p for p, _, _ in items]
    )
    return tfds_cache.Plan("original", identity, (size, size, 1), class_names(options.include_neutral), generate)


def _read_code(path: Path) -> int | None:
    try:
        value = float(path.read_text().strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() and 1 <= value <= 7 else None


def _decode(items, bad: BadFiles, size: int, crop: bool = False) -> tfds_cache.Examples:
    for path, label, (subject, sequence, frame) in items:
        try:
            image = images.decode(path, channels=1, size=None if crop else (size, size))
        except DataError as err:
            bad.report(str(err))
            continue
        if crop:
            image = _square(image, size)
        yield path.name, {"image": image, "label": label, "subject": subject, "sequence": sequence, "frame": frame}


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, then resize to ``size`` × ``size``."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return preprocess.resize(image[top : top + side, left : left + side], size)


@data.DATASETS.register(
    "ckplus",
    layout="auto",
    fold=0,
    num_folds=10,
    validation_fold=True,
    include_neutral=False,
    frame_size=96,
    skip_bad_files=False,
    cache_dir="",
)
@paths.reports_unreadable_files
def load(config) -> data.DatasetSplits:
    options = config.datasets.ckplus
    k, fold = int(options.num_folds), int(options.fold)
    if not 0 <= fold < k:
        raise ConfigError(f"config.datasets.ckplus.fold={fold} must be in 0..{k - 1} (num_folds={k})")
    if options.validation_fold and k < 3:
        raise ConfigError(f"config.datasets.ckplus.num_folds={k}: need >= 3 with validation_fold=True")
    root = paths.data_root(config)
    layout, folder = find(root, options.layout)
    plan = (plan_original if layout == "original" else plan_ck48)(folder, options)
    bad = BadFiles("ckplus", options.skip_bad_files)
    prepared = tfds_cache.load(CKPlusBuilder, plan, bad, paths.cache_root(options.cache_dir))
    pool = prepared.splits["pool"]
    subjects = pool.field("subject")
    folds = partition.subject_folds(subjects, k)
    validation = (fold + 1) % k if options.validation_fold else None
    test_idx = np.flatnonzero(folds == fold)
    val_idx = np.flatnonzero(folds == validation) if validation is not None else np.zeros(0, np.int64)
    train_idx = np.flatnonzero((folds != fold) & (folds != (validation if validation is not None else -1)))
    names = plan.class_names
    notes = [
        f"read from {folder} ({layout} layout); {len(pool)} images, {len(np.unique(subjects))} subjects, "
        f"{len(names)} classes ({', '.join(names)})",
        f"subject-independent {k}-fold CV: test = fold {fold} ({len(test_idx)} images, "
        f"{len(np.unique(subjects[test_idx]))} subjects), "
        + (f"validation = fold {validation} ({len(val_idx)} images, subject-disjoint), " if validation is not None else "no validation split, ")
        + f"train = the other folds ({len(train_idx)} images)",
    ]
    if prepared.skipped_bad_files:
        notes.append(f"skipped {prepared.skipped_bad_files} bad files when preparing (skip_bad_files=True)")
    return data.DatasetSplits(
        name="ckplus",
        class_names=names,
        train=SubsetSource(pool, train_idx),
        validation=SubsetSource(pool, val_idx) if validation is not None else None,
        test=SubsetSource(pool, test_idx),
        notes=notes,
    )
