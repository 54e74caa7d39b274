"""FER-2013 builder (SPEC §3, §9): both layouts, counts on the real copy, bad input, atomicity."""

import csv
import json
import logging
import os
import shutil
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ferjax import data
from ferjax.errors import DataError

REAL = Path(os.environ.get("FERJAX_DATA_DIR", "/nonexistent")) / "fer2013"
needs_real = pytest.mark.skipif(not (REAL / "train").is_dir(), reason="FER-2013 not in $FERJAX_DATA_DIR/fer2013")
# Per-class counts from ../shared/data/README.md, in label order angry..neutral.
TRAIN_COUNTS = [3995, 436, 4097, 7215, 4830, 3171, 4965]


def fer_config(data_dir, cache_dir, **options) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict({"dataset": "fer2013", "data_dir": str(data_dir), "datasets": data.DATASETS.default_config()})
    c.datasets.fer2013.update(cache_dir=str(cache_dir), **options)
    return c


def write_image(path: Path, value: int, size: int = 48, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path, format=fmt)


def make_folders(root: Path, per_class: int = 2) -> Path:
    """Tiny Kaggle layout: ``per_class`` train images per class (pixel value 10·code + i), one
    PublicTest and one PrivateTest image."""
    base = root / "fer2013"
    for code, name in enumerate(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")):
        for i in range(per_class):
            write_image(base / "train" / name / f"Training_{code}{i}.png", 10 * code + i)
    write_image(base / "test" / "neutral" / "PublicTest_1.png", 200)
    write_image(base / "test" / "sad" / "PrivateTest_1.png", 201)
    return base


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)


def pixels(value: int, odd: dict[int, int] | None = None) -> str:
    """2304 copies of ``value``, except ``odd`` {1-based position: value}."""
    values = [value] * 48 * 48
    for position, other in (odd or {}).items():
        values[position - 1] = other
    return " ".join(map(str, values))


def prepared_versions(cache: Path) -> list[Path]:
    return list(cache.glob("ferjax_fer2013/*/1.0.0")) + list(cache.glob("**/*.array_record*"))


@pytest.fixture(scope="module")
def real_folders(tmp_path_factory):
    cache = tmp_path_factory.mktemp("fer_cache")
    return data.load_dataset(fer_config(REAL.parent, cache)), cache


@needs_real
def test_real_folder_layout_counts(real_folders):
    splits, _ = real_folders
    assert (len(splits.train), len(splits.validation)) == (28709, 3589)
    assert splits.test is None and any("PrivateTest" in note for note in splits.notes)
    assert np.bincount(splits.train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(splits.validation.labels, minlength=7).sum() == 3589
    assert splits.train[0]["image"].shape == (48, 48, 1)


@needs_real
def test_a_csv_written_from_the_same_images_gives_the_same_counts(real_folders, tmp_path):
    splits, _ = real_folders
    text = [str(v) for v in range(256)]
    (tmp_path / "fer2013").mkdir()
    with open(tmp_path / "fer2013" / "fer2013.csv", "w") as f:  # fields hold no commas or quotes
        f.write("emotion,pixels,Usage\n")
        for usage, source in (("Training", splits.train), ("PublicTest", splits.validation)):
            for example in source._getitems(range(len(source))):
                pixels = " ".join(map(text.__getitem__, example["image"].ravel().tolist()))
                f.write(f"{example['label']},{pixels},{usage}\n")
    from_csv = data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert "csv layout" in from_csv.notes[0]
    for name in ("train", "validation"):
        a, b = getattr(splits, name), getattr(from_csv, name)
        assert np.bincount(a.labels).tolist() == np.bincount(b.labels).tolist()
    pixel_sums = [sorted(int(e["image"].sum()) for e in s._getitems(range(len(s)))) for s in (splits.validation, from_csv.validation)]
    assert pixel_sums[0] == pixel_sums[1]


def test_folder_names_map_to_csv_codes_and_private_test_is_the_test_split(tmp_path):
    make_folders(tmp_path)
    splits = data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (14, 1, 1)
    assert splits.validation[0]["label"] == 6 and splits.test[0]["label"] == 4  # neutral, sad
    by_value = {int(splits.train[i]["image"][0, 0, 0]): splits.train[i]["label"] for i in range(14)}
    assert all(label == value // 10 for value, label in by_value.items())
    assert not any("PrivateTest" in note for note in splits.notes)


def test_preparing_prints_no_tfds_banner_progress_bars_or_warnings_off_a_terminal(tmp_path, capfd, caplog):
    make_folders(tmp_path)
    capfd.readouterr()
    data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))  # prepares the cache (stderr is not a terminal)
    out, err = capfd.readouterr()
    assert "downloaded and prepared" not in out + err
    assert not [r.getMessage() for r in caplog.records if r.name == "absl" and r.levelno >= logging.WARNING]
    assert "Generating splits" not in err and "Shuffling" not in err
    assert prepared_versions(tmp_path / "cache")  # it was prepared, quietly


def test_csv_layout_with_all_three_usages(tmp_path):
    (tmp_path / "fer2013").mkdir()
    write_csv(tmp_path / "fer2013" / "fer2013.csv", [("3", pixels(1), "Training"), ("6", pixels(2), "PublicTest"), ("0", pixels(3), "PrivateTest")])
    splits = data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert [s[0]["label"] for s in (splits.train, splits.validation, splits.test)] == [3, 6, 0]
    assert splits.train[0]["image"].dtype == np.uint8 and splits.train[0]["image"].max() == 1


def test_a_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a BOM (issue 10, item 1)."""
    (tmp_path / "fer2013").mkdir()
    path = tmp_path / "fer2013" / "fer2013.csv"
    write_csv(path, [("3", pixels(1), "Training"), ("6", pixels(2), "PublicTest")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    splits = data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert (splits.train[0]["label"], splits.validation[0]["label"]) == (3, 6)


def test_without_a_test_folder_a_tenth_of_train_becomes_validation(tmp_path):
    """No test/ means no PublicTest and no PrivateTest (issue 10, item 3): validation is held out of train."""
    base = make_folders(tmp_path, per_class=10)
    shutil.rmtree(base / "test")
    splits = data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert (len(splits.train), len(splits.validation), splits.test) == (63, 7, None)
    assert sorted(splits.validation.labels.tolist()) == list(range(7))
    values = lambda split: {int(split[i]["image"][0, 0, 0]) for i in range(len(split))}  # noqa: E731
    assert not values(splits.train) & values(splits.validation) and len(values(splits.train) | values(splits.validation)) == 70
    assert any(note.startswith("no PublicTest split: 7 train images (10% of each class") for note in splits.notes)
    assert "no test split (PublicTest/PrivateTest absent)" in splits.notes


def test_missing_dataset_says_where_to_put_which_files(tmp_path):
    with pytest.raises(DataError, match=r"FER-2013 not found: put fer2013\.csv .* in .*/fer2013/"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))


@pytest.mark.parametrize(
    "row, message",
    [
        (("9", pixels(1), "Training"), r"line 3: unknown emotion label '9'"),
        (("1", "1 2 3", "Training"), r"line 3: pixels must be 2304 integers, got 3$"),
        (("1", pixels(1).replace("1", "x", 1), "Training"), r"line 3: pixels must be space-separated integers"),
        (("1", pixels(1, {5: 300, 9: 400}), "Training"), r"line 3: pixel 5 is 300, outside 0\.\.255$"),
        (("1", pixels(1, {2304: -1}), "Training"), r"line 3: pixel 2304 is -1, outside 0\.\.255$"),
        (("1", pixels(1), "Holdout"), r"line 3: unknown Usage 'Holdout'"),
    ],
)
def test_bad_csv_rows_name_the_line_and_leave_nothing_prepared(tmp_path, row, message):
    (tmp_path / "fer2013").mkdir()
    write_csv(tmp_path / "fer2013" / "fer2013.csv", [("0", pixels(0), "Training"), row, ("2", pixels(2), "Training")])
    with pytest.raises(DataError, match=message):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert prepared_versions(tmp_path / "cache") == []
    skipped = data.load_dataset(fer_config(tmp_path, tmp_path / "cache", skip_bad_files=True))
    assert len(skipped.train) == 2 and any("skipped 1 bad" in note for note in skipped.notes)


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    base = make_folders(tmp_path)
    corrupt = base / "train" / "happy" / "Training_corrupt.png"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"Training_corrupt\.png: cannot decode image"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert prepared_versions(tmp_path / "cache") == []
    corrupt.unlink()
    truncated = base / "train" / "fear" / "Training_cut.jpg"
    write_image(truncated, 90, fmt="JPEG")
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"Training_cut\.jpg: cannot decode image"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    assert prepared_versions(tmp_path / "cache") == []
    skipped = data.load_dataset(fer_config(tmp_path, tmp_path / "cache", skip_bad_files=True))
    assert len(skipped.train) == 14 and any("skipped 1 bad" in note for note in skipped.notes)


def test_wrong_size_image_names_the_file(tmp_path):
    base = make_folders(tmp_path)
    write_image(base / "train" / "happy" / "Training_big.png", 5, size=64)
    with pytest.raises(DataError, match=r"Training_big\.png: expected a 48x48 image, got 64x64"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))


def test_empty_or_unknown_class_folders_are_errors_or_skipped(tmp_path):
    base = make_folders(tmp_path)
    (base / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match=r"train/contempt: unknown class folder 'contempt'"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    (base / "train" / "contempt").rmdir()
    for f in (base / "train" / "fear").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"train/fear: empty class folder"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))
    skipped = data.load_dataset(fer_config(tmp_path, tmp_path / "cache", skip_bad_files=True))
    assert len(skipped.train) == 12 and any("skipped 1 bad" in note for note in skipped.notes)


def test_unprefixed_test_files_are_rejected(tmp_path):
    base = make_folders(tmp_path)
    write_image(base / "test" / "happy" / "img_7.png", 3)
    with pytest.raises(DataError, match=r"img_7\.png: files in test/ must start with PublicTest_ or PrivateTest_"):
        data.load_dataset(fer_config(tmp_path, tmp_path / "cache"))


def test_prepared_copy_is_reused_and_refreshed_when_a_raw_file_changes(tmp_path):
    base = make_folders(tmp_path)
    config = fer_config(tmp_path, tmp_path / "cache")
    first, again = data.load_dataset(config).notes[0], data.load_dataset(config).notes[0]
    assert first == again and len(list((tmp_path / "cache").glob("ferjax_fer2013/*/1.0.0"))) == 1
    write_image(base / "train" / "happy" / "Training_30.png", 77)  # same name, new content
    changed = data.load_dataset(config)
    assert changed.notes[0] != first and int(changed.train[6]["image"][0, 0, 0]) == 77


def test_the_same_files_copied_again_reuse_the_prepared_copy(tmp_path, caplog):
    base = make_folders(tmp_path)
    config = fer_config(tmp_path, tmp_path / "cache")
    first = data.load_dataset(config).notes[0]
    index = tmp_path / "cache" / "ferjax_fer2013" / "fingerprints.json"
    assert len(json.loads(index.read_text())) == 1
    for path in base.rglob("*.png"):  # a re-synced copy: same bytes, new modification times
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert data.load_dataset(config).notes[0] == first
    assert len(list((tmp_path / "cache").glob("ferjax_fer2013/*/1.0.0"))) == 1
    assert len(json.loads(index.read_text())) == 2  # the new listing now maps to the same copy
    index.write_text("{not json")
    assert data.load_dataset(config).notes[0] == first
    assert f"Ignoring the damaged fingerprint index {index}" in caplog.text
    assert len(json.loads(index.read_text())) == 1  # rewritten
