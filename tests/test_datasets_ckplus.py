"""CK+ builder (SPEC §3): both layouts, subject-independent folds, real CK+48 counts, bad input."""

import os
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ferjax import data
from ferjax.data import partition
from ferjax.errors import ConfigError, DataError

REAL = Path(os.environ.get("FERJAX_DATA_DIR", "/nonexistent"))
needs_real = pytest.mark.skipif(
    not (REAL / "ckplus48" / "CK+48").is_dir(), reason="CK+48 not in $FERJAX_DATA_DIR/ckplus48/CK+48"
)
# ../shared/data/README.md, in class order anger, contempt, disgust, fear, happy, sadness, surprise.
CK48_COUNTS = [135, 54, 177, 75, 207, 84, 249]


def ck_config(data_dir, cache_dir, **options) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict({"dataset": "ckplus", "data_dir": str(data_dir), "datasets": data.DATASETS.default_config()})
    c.datasets.ckplus.update(cache_dir=str(cache_dir), **options)
    return c


def subjects_of(split) -> np.ndarray:
    return split.parent.field("subject")[split.indices]


def make_original(root: Path, sequences: dict[tuple[int, int], int], frames: int = 5) -> Path:
    """cohn-kanade-images/ + Emotion/ with `frames` 30x40 PNG frames per (subject, sequence) -> code."""
    base = root / "ckplus"
    for (subject, sequence), code in sequences.items():
        seq_dir = base / "cohn-kanade-images" / f"S{subject:03d}" / f"{sequence:03d}"
        seq_dir.mkdir(parents=True)
        for frame in range(1, frames + 1):
            pixels = np.full((30, 40), 10 * frame, np.uint8)
            Image.fromarray(pixels).save(seq_dir / f"S{subject:03d}_{sequence:03d}_{frame:08d}.png")
        emotion_dir = base / "Emotion" / f"S{subject:03d}" / f"{sequence:03d}"
        emotion_dir.mkdir(parents=True)
        (emotion_dir / f"S{subject:03d}_{sequence:03d}_{frames:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
    return base


@pytest.fixture(scope="module")
def real_folds(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ck_cache")
    return [data.load_dataset(ck_config(REAL, cache, fold=f)) for f in range(10)]


@needs_real
def test_ck48_has_981_images_with_the_readme_class_counts(real_folds):
    splits = real_folds[0]
    total = np.bincount(np.concatenate([s.labels for s in (splits.train, splits.validation, splits.test)]))
    assert total.tolist() == CK48_COUNTS and splits.num_classes == 7
    assert splits.train[0]["image"].shape == (48, 48, 1)


@needs_real
def test_ck48_ten_test_folds_are_subject_disjoint_and_cover_all_118_subjects(real_folds):
    test_subjects = [set(subjects_of(s.test).tolist()) for s in real_folds]
    assert sum(len(s.test) for s in real_folds) == 981
    assert len(set().union(*test_subjects)) == 118
    assert sum(len(s) for s in test_subjects) == 118  # pairwise disjoint
    for splits in real_folds:
        parts = [set(subjects_of(getattr(splits, name)).tolist()) for name in ("train", "validation", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(splits.train) + len(splits.validation) + len(splits.test) == 981


def test_subject_folds_are_deterministic_balanced_and_keep_subjects_together():
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, 40, 500)
    folds = partition.subject_folds(subjects, 10)
    order = rng.permutation(len(subjects))  # the assignment depends on subject ids only, not on example order
    np.testing.assert_array_equal(partition.subject_folds(subjects[order], 10), folds[order])
    assert all(len(set(folds[subjects == s])) == 1 for s in np.unique(subjects))
    sizes = np.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= np.bincount(subjects).max()
    with pytest.raises(ConfigError):
        partition.subject_folds(subjects, 41)


def test_stratified_holdout_takes_the_fraction_of_each_class():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    kept, held = partition.stratified_holdout(labels, 0.1)
    assert np.bincount(labels[held]).tolist() == [1, 2, 3]
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(60))
    np.testing.assert_array_equal(held, partition.stratified_holdout(labels, 0.1)[1])


def test_original_layout_takes_the_last_three_frames_with_label_code_minus_one(tmp_path):
    sequences = {(s, q): 1 + (s + q) % 7 for s in range(1, 7) for q in (1, 2)}
    make_original(tmp_path, sequences)
    splits = data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3, frame_size=16))
    pool = splits.test.parent
    assert len(pool) == 3 * len(sequences) and pool[0]["image"].shape == (16, 16, 1)
    frames, labels = pool.field("frame"), pool.labels
    assert set(frames.tolist()) == {3, 4, 5}
    expected = [sequences[(s, q)] - 1 for s, q in zip(pool.field("subject"), pool.field("sequence"))]
    assert labels.tolist() == expected


def test_original_layout_with_neutral_first_frames_has_eight_classes(tmp_path):
    make_original(tmp_path, {(1, 1): 5, (2, 1): 7, (3, 1): 2})
    splits = data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3, include_neutral=True))
    pool = splits.test.parent
    assert splits.class_names[0] == "neutral" and splits.num_classes == 8
    assert sorted(zip(pool.field("frame").tolist(), pool.labels.tolist()))[:3] == [(1, 0), (1, 0), (1, 0)]
    assert {5, 7, 2} <= set(pool.labels.tolist())


def test_bad_emotion_file_names_the_file_and_can_be_skipped(tmp_path):
    base = make_original(tmp_path, {(1, 1): 5, (2, 1): 7, (3, 1): 2, (4, 1): 1})
    next((base / "Emotion" / "S002" / "001").glob("*.txt")).write_text("nine\n")
    with pytest.raises(DataError, match=r"S002_001_00000005_emotion\.txt: expected one emotion code 1-7"):
        data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3))
    skipped = data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3, skip_bad_files=True))
    assert len(skipped.test.parent) == 9 and any("skipped 1 bad" in note for note in skipped.notes)


def test_ck48_bad_names_and_empty_class_folders(tmp_path):
    folder = tmp_path / "ckplus48" / "CK+48"
    for i, name in enumerate(("anger", "happy", "surprise")):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(folder / name / f"S00{i}_001_00000010.png")
    (folder / "fear").mkdir()
    with pytest.raises(DataError, match=r"CK\+48/fear: empty class folder"):
        data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3))
    (folder / "fear").rmdir()
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(folder / "happy" / "face.png")
    with pytest.raises(DataError, match=r"face\.png: file name must be S<subject>_<sequence>_<frame>\.png"):
        data.load_dataset(ck_config(tmp_path, tmp_path / "cache", num_folds=3))


def test_missing_dataset_and_bad_fold_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"CK\+ not found: put cohn-kanade-images/.* in .*/ckplus/, or the CK\+48"):
        data.load_dataset(ck_config(tmp_path, tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"fold=10 must be in 0\.\.9"):
        data.load_dataset(ck_config(tmp_path, tmp_path / "cache", fold=10))
