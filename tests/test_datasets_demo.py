"""The built-in demo dataset: deterministic, balanced, in memory (issue 2, item 5)."""

from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from ferjax import config as ferjax_config
from ferjax import data
from ferjax.data import pipeline
from ferjax.datasets import demo
from ferjax.errors import ConfigError


def demo_config(**options) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict({"dataset": "demo", "datasets": data.DATASETS.default_config()})
    c.datasets.demo.update(options)
    return c


def test_demo_splits_are_balanced_uint8_faces_with_seven_classes():
    splits = data.load_dataset(demo_config(train_size=140, validation_size=70, test_size=0))
    assert splits.num_classes == 7 and splits.class_names[3] == "happy"
    assert len(splits.train) == 140 and len(splits.validation) == 70 and splits.test is None
    assert np.array_equal(np.bincount(splits.train.labels), [20] * 7)
    example = splits.train[0]
    assert example["image"].shape == (48, 48, 1) and example["image"].dtype == np.uint8
    assert isinstance(example["label"], int)


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(train_size=0), r"^config\.datasets\.demo\.train_size=0: must be at least 1$"),
        (dict(train_size=-5), r"^config\.datasets\.demo\.train_size=-5: must be at least 1$"),
        (dict(test_size=-3), r"^config\.datasets\.demo\.test_size=-3: must be at least 0 \(0 leaves the test split out\)$"),
        (dict(validation_size=-1), r"^config\.datasets\.demo\.validation_size=-1: must be at least 0"),
    ],
)
def test_demo_sizes_out_of_range_are_one_line_config_errors(option, message):
    """Issue 10, item 5: no training split, or a negative size, is a user error, not a crash."""
    with pytest.raises(ConfigError, match=message):
        data.load_dataset(demo_config(**option))


def test_demo_is_deterministic_by_seed_and_splits_differ():
    a, b = demo.generate(21, 0, "train"), demo.generate(21, 0, "train")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(demo.generate(21, 1, "train").images, a.images)
    assert not np.array_equal(demo.generate(21, 0, "test").images, a.images)


def test_a_constant_prediction_scores_near_chance():
    labels = demo.generate(700, 0, "test").labels
    assert np.bincount(labels).max() / len(labels) <= 0.3


def test_an_untrained_baseline_cnn_scores_at_most_30_percent():
    from ferjax.data import preprocess
    from ferjax.models.classifier import build_model

    config = ferjax_config.load(Path(__file__).resolve().parents[1] / "configs" / "demo.py")
    config.eval_batch_size = 350
    model, _ = build_model(config, 7)
    variables = model.init(jax.random.key(0), np.zeros((1, 48, 48, 1), np.float32), train=False)
    apply = jax.jit(lambda images: model.apply(variables, images, train=False).head.logits)
    correct = total = 0
    for batch in pipeline.eval_batches(demo.generate(700, 0, "test"), config):
        predictions = np.asarray(apply(preprocess.normalize(batch["image"]))).argmax(-1)
        correct += int(((predictions == batch["label"]) & batch["mask"]).sum())
        total += int(batch["mask"].sum())
    assert total == 700 and correct / total <= 0.3
