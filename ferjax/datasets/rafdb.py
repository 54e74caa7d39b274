"""RAF-DB basic (SPEC §3): 100×100 aligned RGB faces, 7 classes, train 12,271 / test 3,068.

Accepted layouts under ``<data_dir>/rafdb/`` (``config.datasets.rafdb.layout``; "auto" tries
list, then folders):

* ``list``: ``list_patition_label.txt`` (lines ``train_00001.jpg 5``; also under
  ``EmoLabel/`` or ``basic/``) next to ``Image/aligned/train_00001_aligned.jpg``.
* ``folders``: ``DATASET/train/<1..7>/*.jpg`` and ``DATASET/test/<1..7>/*.jpg``.

Labels 1..7 become 0..6: surprise, fear, disgust, happiness, sadness, anger, neutral.
RAF-DB has no validation split: a stratified ``validation_fraction`` of train (fixed
permutation, seed 0) is held out for model selection and the notes say so.
"""

from __future__ import annotations

from pathlib import Path

from ferjax import data
from ferjax.data import images, partition, paths, tfds_cache
from ferjax.data.badfiles import BadFiles
from ferjax.errors import ConfigError, DataError

CLASS_NAMES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
_SHAPE = (100, 100, 3)
_LABEL_FILE = "list_patition_label.txt"  # sic: RAF-DB's own spelling
_INSTRUCTIONS = (
    "put list_patition_label.txt and Image/aligned/*_aligned.jpg in {root}/rafdb/ "
    "(or DATASET/{{train,test}}/<1..7>/*.jpg); RAF-DB is licensed for research: request it from its authors "
    "(http://www.whdeng.cn/RAF/model1.html)"
)

class RafdbBuilder(tfds_cache.PlannedBuilder):
    """RAF-DB basic emotion subset, aligned 100x100 RGB; labels 0 surprise .. 6 neutral."""

    name = "ferjax_rafdb"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS.format(root="<data_dir>")


def find(root: Path, layout: str) -> tuple[str, Path]:
    """(layout, path): the label file, or the folder holding train/ and test/."""
    folder = root / "rafdb"
    label_file = paths.first_existing(
        *(base / sub / _LABEL_FILE for base in (folder, folder / "basic") for sub in (".", "EmoLabel"))
    )
    class_root = paths.first_existing(folder / "DATASET", folder)
    found = {
        "list": label_file,
        "folders": class_root if class_root is not None and (class_root / "train").is_dir() else None,
    }
    if layout not in ("auto", *found):
        raise ConfigError(f"config.datasets.rafdb.layout={layout!r}; valid: auto, list, folders")
    for name in ("list", "folders") if layout == "auto" else (layout,):
        if found[name] is not None:
            return name, found[name]
    raise DataError("RAF-DB not found: " + _INSTRUCTIONS.format(root=root))


def _image_dir(label_file: Path) -> Path:
    base = label_file.parent.parent if label_file.parent.name == "EmoLabel" else label_file.parent
    return base / "Image" / "aligned"


def list_labelled(label_file: Path, bad: BadFiles) -> dict[str, list[tuple[Path, int]]]:
    """(image path, label 0..6) per split from ``list_patition_label.txt``."""
    image_dir = _image_dir(label_file)
    splits: dict[str, list] = {}
    for line_no, line in enumerate(label_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] not in {str(code) for code in range(1, 8)} or not fields[0].startswith(("train_", "test_")):
            bad.report(f"{label_file}, line {line_no}: expected '<train|test>_NNNNN.jpg <1-7>', got {line.strip()!r}")
            continue
        stem = Path(fields[0]).stem
        path = paths.first_existing(image_dir / f"{stem}_aligned.jpg", image_dir / fields[0])
        if path is None:
            bad.report(f"{image_dir / (stem + '_aligned.jpg')}: missing (listed in {label_file.name} line {line_no})")
            continue
        splits.setdefault(fields[0].split("_")[0], []).append((path, int(fields[1]) - 1))
    return splits


def list_folders(folder: Path, bad: BadFiles) -> dict[str, list[tuple[Path, int]]]:
    """(image path, label 0..6) per split from ``train/<1..7>/`` and ``test/<1..7>/``."""
    splits: dict[str, list] = {}
    for split in ("train", "test"):
        if not (folder / split).is_dir():
            continue
        for class_dir in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
            if class_dir.name not in {str(code) for code in range(1, 8)}:
                bad.report(f"{class_dir}: class folders must be named 1..7, got {class_dir.name!r}")
                continue
            files = images.image_files(class_dir)
            if not files:
                bad.report(f"{class_dir}: empty class folder")
            splits.setdefault(split, []).extend((path, int(class_dir.name) - 1) for path in files)
    return splits


def plan(layout: str, path: Path, skip: bool) -> tfds_cache.Plan:
    listing = BadFiles("rafdb", skip)
    files = (list_labelled if layout == "list" else list_folders)(path, listing)

    def generate(bad: BadFiles) -> dict[str, tfds_cache.Examples]:
        bad.count += listing.count
        return {split: _decode(items, bad) for split, items in files.items()}

    flat = [p for items in files.values() for p, _ in items]
    identity = tfds_cache.identity(layout, skip, str(path), files=[*flat, path] if path.is_file() else flat)
    return tfds_cache.Plan(layout, identity, _SHAPE, CLASS_NAMES, generate)


def _decode(items: list[tuple[Path, int]], bad: BadFiles) -> tfds_cache.Examples:
    for path, label in items:
        try:
            image = images.decode(path, channels=3, size=_SHAPE[:2])
        except DataError as err:
            bad.report(str(err))
            continue
        yield path.name, {"image": image, "label": label}


@data.DATASETS.register("rafdb", layout="auto", validation_fraction=0.1, skip_bad_files=False, cache_dir="")
@paths.reports_unreadable_files
def load(config) -> data.DatasetSplits:
    options = config.datasets.rafdb
    root = paths.data_root(config)
    layout, path = find(root, options.layout)
    bad = BadFiles("rafdb", options.skip_bad_files)
    prepared = tfds_cache.load(RafdbBuilder, plan(layout, path, options.skip_bad_files), bad, paths.cache_root(options.cache_dir))
    if "train" not in prepared.splits:
        raise DataError(f"{path}: no training images found; " + _INSTRUCTIONS.format(root=root))
    train, validation, held_out = partition.hold_out(prepared.splits["train"], float(options.validation_fraction))
    notes = [f"read from {path} ({layout} layout); prepared copy in {prepared.path}", f"no official validation split: {held_out}"]
    if "test" not in prepared.splits:
        notes.append("no test split present: reporting on train and validation only")
    if prepared.skipped_bad_files:
        notes.append(f"skipped {prepared.skipped_bad_files} bad files/lines when preparing (skip_bad_files=True)")
    return data.DatasetSplits(
        name="rafdb",
        class_names=CLASS_NAMES,
        train=train,
        validation=validation,
        test=prepared.splits.get("test"),
        notes=notes,
    )
