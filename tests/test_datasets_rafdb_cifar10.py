"""RAF-DB basic (both layouts, held-out validation) and CIFAR-10 (pickles) on tiny fixtures."""

import pickle
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ferjax import data
from ferjax.errors import DataError


def make_config(name, data_dir, **options) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict({"dataset": name, "data_dir": str(data_dir), "datasets": data.DATASETS.default_config()})
    if "cache_dir" in c.datasets[name]:
        options.setdefault("cache_dir", str(Path(data_dir) / "cache"))
    c.datasets[name].update(options)
    return c


def write_rgb(path: Path, value: int, size: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, quality=100)


def make_list_layout(root: Path, per_class: int = 10) -> Path:
    base = root / "rafdb" / "basic"
    lines = []
    for code in range(1, 8):
        for i in range(per_class):
            name = f"train_{code}{i:04d}.jpg"
            write_rgb(base / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), 30 * code)
            lines.append(f"{name} {code}")
    write_rgb(base / "Image" / "aligned" / "test_0001_aligned.jpg", 7)
    lines.append("test_0001.jpg 7")
    (base / "EmoLabel").mkdir(parents=True)
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return base


def test_rafdb_list_layout_maps_labels_and_holds_out_a_stratified_validation_slice(tmp_path):
    make_list_layout(tmp_path)
    splits = data.load_dataset(make_config("rafdb", tmp_path))
    assert splits.class_names[0] == "surprise" and splits.class_names[6] == "neutral"
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (63, 7, 1)
    assert np.bincount(splits.validation.labels).tolist() == [1] * 7
    assert splits.test[0]["label"] == 6 and splits.test[0]["image"].shape == (100, 100, 3)
    example = splits.train[0]
    assert abs(int(example["image"].mean()) - 30 * (example["label"] + 1)) <= 2
    assert any("held out for model selection" in note for note in splits.notes)


def test_rafdb_folder_layout(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for code in range(1, 8):
            for i in range(count):
                write_rgb(tmp_path / "rafdb" / "DATASET" / split / str(code) / f"{split}_{code}_{i}.jpg", code)
    splits = data.load_dataset(make_config("rafdb", tmp_path, validation_fraction=0.0))
    assert (len(splits.train), splits.validation, len(splits.test)) == (21, None, 7)
    assert sorted(splits.test.labels.tolist()) == list(range(7))


def test_rafdb_missing_says_where_to_put_which_files(tmp_path):
    with pytest.raises(DataError, match=r"RAF-DB not found: put list_patition_label\.txt and Image/aligned/\*_aligned\.jpg in .*/rafdb/ \(or DATASET/\{train,test\}/<1\.\.7>/"):
        data.load_dataset(make_config("rafdb", tmp_path))


def test_rafdb_bad_label_line_and_missing_image_name_the_line(tmp_path):
    base = make_list_layout(tmp_path, per_class=2)
    label_file = base / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text() + "train_9999.jpg 8\n")
    with pytest.raises(DataError, match=r"list_patition_label\.txt, line 16: expected"):
        data.load_dataset(make_config("rafdb", tmp_path))
    label_file.write_text(label_file.read_text().replace("train_9999.jpg 8", "train_9999.jpg 3"))
    with pytest.raises(DataError, match=r"train_9999_aligned\.jpg: missing \(listed in list_patition_label\.txt line 16\)"):
        data.load_dataset(make_config("rafdb", tmp_path))
    skipped = data.load_dataset(make_config("rafdb", tmp_path, skip_bad_files=True, validation_fraction=0.0))
    assert len(skipped.train) == 14 and any("skipped 1 bad" in note for note in skipped.notes)


def write_cifar(folder: Path, per_batch: int = 4) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), b"labels": list(range(per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def test_cifar10_reads_the_python_pickles_as_hwc_images(tmp_path):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    splits = data.load_dataset(make_config("cifar10", tmp_path, validation_size=4))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (16, 4, 4)
    assert splits.class_names[9] == "truck" and splits.train[0]["image"].shape == (32, 32, 3)
    raw = pickle.loads((tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").read_bytes())[b"data"][1]
    np.testing.assert_array_equal(splits.test[1]["image"][..., 0].ravel(), raw[:1024])


def test_cifar10_missing_or_corrupt_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found: put the extracted cifar-10-batches-py/"):
        data.load_dataset(make_config("cifar10", tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").write_bytes(b"\x80garbage")
    with pytest.raises(DataError, match=r"data_batch_3: cannot read CIFAR-10 batch"):
        data.load_dataset(make_config("cifar10", tmp_path))
