"""FER-2013 (SPEC §3): 48×48 gray faces, 7 classes, train / validation / test.

Accepted layouts under ``<data_dir>/fer2013/`` (``config.datasets.fer2013.layout``:
"auto" prefers the CSV when both exist):

* ``csv``: the original ``fer2013.csv`` (also ``fer2013/fer2013.csv``) with columns
  ``emotion,pixels,Usage``; Usage Training → train, PublicTest → validation,
  PrivateTest → test.
* ``folders``: Kaggle's ``train/<class>/*`` and ``test/<class>/*`` with class folders
  angry, disgust, fear, happy, neutral, sad, surprise (mapped explicitly to the CSV codes
  0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral); files in ``test/``
  must start with ``PublicTest_`` (validation) or ``PrivateTest_`` (test).

A split with no examples (e.g. a copy without PrivateTest) is absent, and a note says so.
Without PublicTest (e.g. no ``test/`` folder), a stratified ``validation_fraction`` (10%) of
train is held out as validation (:func:`ferjax.data.partition.hold_out`) so that model selection and a report
remain possible.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ferjax import data
from ferjax.data import images, partition, paths, tfds_cache
from ferjax.data.badfiles import BadFiles
from ferjax.errors import ConfigError, DataError

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_USAGE = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
_TEST_PREFIXES = {"PublicTest_": "validation", "PrivateTest_": "test"}
_SIDE = 48
_SHAPE = (_SIDE, _SIDE, 1)


class Fer2013Builder(tfds_cache.PlannedBuilder):
    """FER-2013 (ICML 2013 challenge), 48x48 gray; labels 0 angry .. 6 neutral."""

    name = "ferjax_fer2013"


def _missing(root: Path) -> DataError:
    return DataError(
        f"FER-2013 not found: put fer2013.csv (columns emotion,pixels,Usage) in {root}/fer2013/, or the "
        f"Kaggle folders train/<class>/*.jpg and test/<class>/*.jpg in {root}/fer2013/ "
        "(set config.data_dir or $FERJAX_DATA_DIR to another folder)"
    )


def find(root: Path, layout: str) -> tuple[str, Path]:
    """(layout, path): the CSV file or the folder holding train/ and test/."""
    folder = root / "fer2013"
    csv_path = paths.first_existing(folder / "fer2013.csv", folder / "fer2013" / "fer2013.csv")
    found = {"csv": csv_path, "folders": folder if (folder / "train").is_dir() else None}
    if layout not in ("auto", *found):
        raise ConfigError(f"config.datasets.fer2013.layout={layout!r}; valid: auto, csv, folders")
    for name in ("csv", "folders") if layout == "auto" else (layout,):
        if found[name] is not None:
            return name, found[name]
    raise _missing(root)


def plan_csv(path: Path, skip: bool) -> tfds_cache.Plan:
    def generate(bad: BadFiles) -> dict[str, tfds_cache.Examples]:
        rows = read_csv(path, bad)
        return {split: _emit(examples) for split, examples in rows.items()}

    return tfds_cache.Plan("csv", tfds_cache.identity("csv", skip, files=[path]), _SHAPE, CLASS_NAMES, generate)


def _emit(examples: list[tuple[str, np.ndarray, int]]) -> tfds_cache.Examples:
    for key, image, label in examples:
        yield key, {"image": image, "label": label}


def read_csv(path: Path, bad: BadFiles) -> dict[str, list[tuple[str, np.ndarray, int]]]:
    """Parse ``fer2013.csv`` into (key, image, label) per split; bad rows go to ``bad``."""
    splits: dict[str, list] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a byte-order mark
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not {"emotion", "pixels", "Usage"} <= set(header):
            raise DataError(f"{path}: header must name the columns emotion,pixels,Usage; got {','.join(header)!r}")
        column = {name: header.index(name) for name in ("emotion", "pixels", "Usage")}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            parsed = _parse_row(row, column)
            if isinstance(parsed, str):
                bad.report(f"{path}, line {line}: {parsed}")
                continue
            split, image, label = parsed
            splits.setdefault(split, []).append((f"line{line}", image, label))
    return splits


def _parse_row(row: list[str], column: dict[str, int]) -> tuple[str, np.ndarray, int] | str:
    """(split, image, label), or the reason the row is bad."""
    if len(row) <= max(column.values()):
        return f"expected {max(column.values()) + 1} fields, got {len(row)}"
    emotion, usage = row[column["emotion"]].strip(), row[column["Usage"]].strip()
    if emotion not in {str(code) for code in range(len(CLASS_NAMES))}:
        return f"unknown emotion label {emotion!r} (valid: 0-6)"
    if usage not in _USAGE:
        return f"unknown Usage {usage!r} (valid: {', '.join(_USAGE)})"
    try:
        pixels = np.fromstring(row[column["pixels"]], dtype=np.int64, sep=" ")
    except ValueError:
        return "pixels must be space-separated integers"
    if pixels.size != _SIDE * _SIDE:
        return f"pixels must be {_SIDE * _SIDE} integers, got {pixels.size}"
    outside = np.flatnonzero((pixels < 0) | (pixels > 255))
    if outside.size:
        return f"pixel {outside[0] + 1} is {pixels[outside[0]]}, outside 0..255"
    return _USAGE[usage], pixels.astype(np.uint8).reshape(_SIDE, _SIDE, 1), int(emotion)


def plan_folders(folder: Path, skip: bool) -> tfds_cache.Plan:
    """List the Kaggle folders now (bad names and empty folders fail early); decode when preparing."""
    listing = BadFiles("fer2013", skip)
    files = list_folders(folder, listing)

    def generate(bad: BadFiles) -> dict[str, tfds_cache.Examples]:
        bad.count += listing.count
        return {split: _decode(items, bad) for split, items in files.items()}

    flat = [path for items in files.values() for path, _ in items]
    identity = tfds_cache.identity("folders", skip, str(folder), files=flat)
    return tfds_cache.Plan("folders", identity, _SHAPE, CLASS_NAMES, generate)


def list_folders(folder: Path, bad: BadFiles) -> dict[str, list[tuple[Path, int]]]:
    """(path, label) per split from ``train/`` and ``test/``."""
    splits: dict[str, list[tuple[Path, int]]] = {}
    for top in ("train", "test"):
        if not (folder / top).is_dir():
            continue
        for class_dir in sorted(p for p in (folder / top).iterdir() if p.is_dir()):
            if class_dir.name.lower() not in CLASS_NAMES:
                bad.report(f"{class_dir}: unknown class folder {class_dir.name!r}; expected {', '.join(sorted(CLASS_NAMES))}")
                continue
            label = CLASS_NAMES.index(class_dir.name.lower())
            files = images.image_files(class_dir)
            if not files:
                bad.report(f"{class_dir}: empty class folder")
            for path in files:
                split = "train" if top == "train" else _test_split(path)
                if split is None:
                    bad.report(f"{path}: files in test/ must start with PublicTest_ or PrivateTest_")
                    continue
                splits.setdefault(split, []).append((path, label))
    return splits


def _test_split(path: Path) -> str | None:
    return next((split for prefix, split in _TEST_PREFIXES.items() if path.name.startswith(prefix)), None)


def _decode(items: list[tuple[Path, int]], bad: BadFiles) -> tfds_cache.Examples:
    for path, label in items:
        try:
            image = images.decode(path, channels=1, size=(_SIDE, _SIDE))
        except DataError as err:
            bad.report(str(err))
            continue
        yield f"{path.parent.name}/{path.name}", {"image": image, "label": label}


@data.DATASETS.register("fer2013", layout="auto", skip_bad_files=False, cache_dir="", validation_fraction=0.1)
@paths.reports_unreadable_files
def load(config) -> data.DatasetSplits:
    options = config.datasets.fer2013
    root = paths.data_root(config)
    layout, path = find(root, options.layout)
    plan = (plan_csv if layout == "csv" else plan_folders)(path, options.skip_bad_files)
    bad = BadFiles("fer2013", options.skip_bad_files)
    prepared = tfds_cache.load(Fer2013Builder, plan, bad, paths.cache_root(options.cache_dir))
    splits = prepared.splits
    if "train" not in splits:
        raise DataError(f"{path}: no training examples (Usage Training / train/ folder) found")
    notes = [f"read from {path} ({layout} layout); prepared copy in {prepared.path}"]
    train, validation = splits["train"], splits.get("validation")
    if validation is None:
        train, validation, held_out = partition.hold_out(train, float(options.validation_fraction))
        notes.append(f"no PublicTest split: {held_out}")
    if "test" not in splits:
        absent = "PrivateTest" if "validation" in splits else "PublicTest/PrivateTest"
        notes.append(f"no test split ({absent} absent)")
    if prepared.skipped_bad_files:
        notes.append(f"skipped {prepared.skipped_bad_files} bad files/rows when preparing (skip_bad_files=True)")
    return data.DatasetSplits(
        name="fer2013", class_names=CLASS_NAMES, train=train, validation=validation, test=splits.get("test"), notes=notes
    )
