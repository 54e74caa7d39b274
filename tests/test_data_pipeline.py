"""Input pipeline (SPEC §2–3, §9): determinism, resumption, epochs, eval padding, preprocessing."""

import ml_collections
import numpy as np
import pytest

from ferjax.data import augment, pipeline
from ferjax.data.sources import ArraySource
from ferjax.errors import DataError


def make_config(**overrides) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(
        dict(
            dataset="toy",
            seed=3,
            batch_size=8,
            eval_batch_size=4,
            image_size=8,
            channels=1,
            augment=dict(
                enabled=True, flip=True, rotation_degrees=20.0, shift_fraction=0.1, zoom_range=0.1,
                shear_degrees=5.0, crop_padding=2, erasing_probability=0.5,
            ),
        )
    )
    c.update(overrides)
    return c


def indexed_source(n: int, size: int = 8, channels: int = 1) -> ArraySource:
    """Example i has label i and a constant image of value i (so order is observable)."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, channels)).copy()
    return ArraySource(images, np.arange(n))


def take(iterator, count: int) -> list[dict]:
    return [next(iterator) for _ in range(count)]


def test_batches_have_the_promised_shapes_and_dtypes():
    batch = next(pipeline.train_batches(indexed_source(20), make_config(), start_step=0))
    assert batch["image"].shape == (8, 8, 8, 1) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0


def test_same_seed_same_batches_and_resume_equals_uninterrupted_run():
    source, config = indexed_source(20), make_config()  # 2 steps per epoch: resume crosses epochs
    full = take(pipeline.train_batches(source, config, start_step=0), 7)
    again = take(pipeline.train_batches(source, config, start_step=0), 7)
    resumed = take(pipeline.train_batches(source, config, start_step=3), 4)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_each_epoch_is_a_fresh_shuffle_without_repeats_and_drops_the_remainder():
    source, config = indexed_source(20), make_config()
    assert pipeline.steps_per_epoch(source, config) == 2
    batches = take(pipeline.train_batches(source, config, start_step=0), 6)
    epochs = [np.concatenate([b["label"] for b in batches[i : i + 2]]) for i in (0, 2, 4)]
    for labels in epochs:
        assert len(set(labels.tolist())) == 16
    assert not np.array_equal(epochs[0], epochs[1])
    other_seed = take(pipeline.train_batches(source, make_config(seed=4), start_step=0), 2)
    assert not np.array_equal(np.concatenate([b["label"] for b in other_seed]), epochs[0])


def test_without_augmentation_images_are_the_normalised_originals():
    config = make_config()
    config.augment.enabled = False
    batch = next(pipeline.train_batches(indexed_source(20), config, start_step=1))
    expected = batch["label"].astype(np.float32)[:, None, None, None] / 127.5 - 1.0
    np.testing.assert_allclose(batch["image"], np.broadcast_to(expected, batch["image"].shape), atol=1e-6)


def test_channels_and_size_are_converted():
    config = make_config(image_size=12, channels=3)
    batch = next(pipeline.train_batches(indexed_source(20, size=8, channels=1), config, start_step=0))
    assert batch["image"].shape == (8, 12, 12, 3)
    gray = next(pipeline.eval_batches(indexed_source(5, channels=3), make_config(channels=1)))
    assert gray["image"].shape == (4, 8, 8, 1)


def test_eval_batches_cover_the_split_in_order_with_a_padded_masked_last_batch():
    batches = list(pipeline.eval_batches(indexed_source(10), make_config()))
    assert [b["mask"].sum() for b in batches] == [4, 4, 2]
    assert all(b["image"].shape == (4, 8, 8, 1) for b in batches)
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(labels, np.arange(10))
    assert not batches[-1]["mask"][2:].any()


def test_a_split_smaller_than_a_batch_is_a_data_error():
    with pytest.raises(DataError, match="fewer than config.batch_size=8"):
        pipeline.steps_per_epoch(indexed_source(5), make_config())


def test_augmentation_is_off_when_disabled_or_all_zero():
    config = make_config()
    assert augment.Settings.from_config(config.augment) is not None
    config.augment.enabled = False
    assert augment.Settings.from_config(config.augment) is None


def params_for(batch: int, **fields) -> dict:
    base = {
        "matrix": np.tile(np.eye(2, dtype=np.float32), (batch, 1, 1)),
        "shift": np.zeros((batch, 2), np.float32),
        "crop": np.zeros((batch, 2), np.int32),
        "box": np.zeros((batch, 4), np.int32),
        "erase_seed": np.zeros(batch, np.uint32),
    }
    base.update(fields)
    return base


def test_warp_identity_flip_and_crop_are_exact():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 6, 6, 1), dtype=np.uint8)
    settings = augment.Settings(flip=True)
    identity = augment.apply(images, params_for(2), settings)
    np.testing.assert_allclose(identity, images / 127.5 - 1, atol=1e-5)
    flip = np.tile(np.diag([-1.0, 1.0]).astype(np.float32), (2, 1, 1))
    flipped = augment.apply(images, params_for(2, matrix=flip), settings)
    np.testing.assert_allclose(flipped, images[:, :, ::-1] / 127.5 - 1, atol=1e-5)
    crop = np.asarray([[2, 0], [0, -1]], np.int32)  # (dx, dy): view moved right 2 / up 1 over zero padding
    cropped = augment.apply(images, params_for(2, crop=crop), settings)
    np.testing.assert_allclose(cropped[0, :, :4], images[0, :, 2:] / 127.5 - 1, atol=1e-5)
    np.testing.assert_allclose(cropped[0, :, 4:], -1.0)
    np.testing.assert_allclose(cropped[1, 1:], images[1, :5] / 127.5 - 1, atol=1e-5)
    np.testing.assert_allclose(cropped[1, 0], -1.0)


def test_erasing_fills_the_box_with_noise_only():
    images = np.full((1, 8, 8, 1), 255, np.uint8)
    params = params_for(1, box=np.asarray([[1, 2, 4, 6]], np.int32), erase_seed=np.asarray([7], np.uint32))
    out = augment.apply(images, params, augment.Settings(erasing_probability=1.0))
    box = np.zeros((8, 8), bool)
    box[1:4, 2:6] = True
    assert np.all(out[0, ..., 0][~box] == 1.0)
    assert np.all(out[0, ..., 0][box] < 1.0) and out[0, ..., 0][box].std() > 0.2


@pytest.mark.parametrize("kind", ["train", "eval"])
def test_each_process_reads_its_share_of_the_same_global_batch(monkeypatch, kind):
    source, config = indexed_source(20), make_config()

    def batches(process_count: int, process_index: int) -> list[dict]:
        monkeypatch.setattr(pipeline.jax, "process_count", lambda: process_count)
        monkeypatch.setattr(pipeline.jax, "process_index", lambda: process_index)
        if kind == "train":
            return take(pipeline.train_batches(source, config, start_step=1), 3)
        return list(pipeline.eval_batches(source, config))

    whole, first, second = batches(1, 0), batches(2, 0), batches(2, 1)
    for full, a, b in zip(whole, first, second, strict=True):  # contiguous halves: same rows on the same devices
        half = len(full["label"]) // 2
        assert len(a["label"]) == half
        for key in full:
            np.testing.assert_array_equal(a[key], full[key][:half])
            np.testing.assert_array_equal(b[key], full[key][half:])
