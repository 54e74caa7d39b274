"""Trainer: end-to-end outputs, 1 vs 8 devices, exact resume, NaN stop (SPEC §2, §9)."""

import json

import jax
import numpy as np
import pytest

from ferjax import checks, optim, parallel, run, train
from ferjax.config import get_config
from ferjax.errors import ConfigError, TrainingDiverged
from ferjax.models.classifier import build_model
from tests import toy_data


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


def toy_config(**overrides):
    c = get_config()
    c.dataset = toy_data.NAME
    c.image_size = 16
    c.channels = 1
    c.models.baseline_cnn.conv_features = (8, 16)
    c.models.baseline_cnn.dense_features = (32, 16)
    c.models.baseline_cnn.dropout_rates = (0.25, 0.25)
    c.batch_size = 16
    c.eval_batch_size = 16
    c.num_epochs = 2
    c.log_every_steps = 2
    c.checkpoint_every_steps = 4
    c.progress_bar = False
    c.augment.enabled = True
    for key, value in overrides.items():
        target = c
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return c


def events(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def params_of(workdir, step=None):
    return run.load_run(workdir, "latest" if step is None else step).variables["params"]


def test_run_writes_every_output(tmp_path):
    report = train.train_and_evaluate(toy_config(), tmp_path)
    for name in ("metrics.jsonl", "report.json", "confusion_test.png", "confusion_validation.png", "training_curves.png"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    logged = events(tmp_path)
    assert all({"step", "split", "loss", "accuracy"} <= set(e) for e in logged)
    val = [e for e in logged if e["split"] == "validation"]
    assert len(val) == 2 and {"macro_precision", "macro_recall", "macro_f1", "per_class_recall"} <= set(val[0])
    assert report["splits"]["test"]["num_examples"] == 44  # 44 = 2 full batches + a padded one of 12
    assert report["steps"] == 2 * (96 // 16)


def sgd_config(**overrides):
    # SGD: Adam would turn float reduction-order noise in near-zero gradients into full-size steps.
    return toy_config(num_epochs=1, optimizer="sgd", learning_rate=0.02, **overrides)


@pytest.fixture(scope="module")
def eight_device_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("d8")
    assert train.parallel.make_mesh().size == 8
    report = train.train_and_evaluate(sgd_config(), workdir)
    assert report["devices"] == 8
    return workdir


def assert_params_close(workdir_a, workdir_b, atol):
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=atol), params_of(workdir_a), params_of(workdir_b)
    )


def one_device_mesh():
    return parallel.make_mesh(jax.devices()[:1])


def test_one_and_eight_devices_agree(tmp_path, eight_device_run):
    report1 = train.train_and_evaluate(sgd_config(), tmp_path, mesh=one_device_mesh())
    assert report1["devices"] == 1
    loss1 = [e["loss"] for e in events(tmp_path) if e["split"] == "train"]
    loss8 = [e["loss"] for e in events(eight_device_run) if e["split"] == "train"]
    np.testing.assert_allclose(loss1, loss8, rtol=1e-5, atol=1e-5)
    assert_params_close(tmp_path, eight_device_run, atol=1e-5)


def test_checkpoint_from_eight_devices_resumes_on_one(tmp_path, eight_device_run):
    train.train_and_evaluate(sgd_config(max_steps=3), tmp_path)  # 8 devices, stopped after 3 steps
    report = train.train_and_evaluate(sgd_config(), tmp_path, mesh=one_device_mesh())
    assert report["devices"] == 1 and report["steps"] == 6
    assert_params_close(tmp_path, eight_device_run, atol=1e-5)


def test_interrupted_run_resumes_exactly(tmp_path):
    full = toy_config()
    train.train_and_evaluate(full, tmp_path / "full")
    train.train_and_evaluate(toy_config(max_steps=5), tmp_path / "resumed")  # "killed" after 5 steps
    train.train_and_evaluate(full, tmp_path / "resumed")
    assert_params_close(tmp_path / "full", tmp_path / "resumed", atol=1e-6)
    steps = [e["step"] for e in events(tmp_path / "resumed") if e["split"] == "train"]
    assert steps == sorted(set(steps)), "resumed log repeats steps"


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    config = toy_config(learning_rate=1e12, optimizer="sgd", num_epochs=4, log_every_steps=1, checkpoint_every_steps=1)
    with pytest.raises(TrainingDiverged, match=r"at step \d+"):
        train.train_and_evaluate(config, tmp_path)
    last_good = params_of(tmp_path)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(last_good))


def _one_step(config, mesh, batch):
    """The trainer's jitted step on ``mesh``: (state after one step, its metrics, the initial state)."""
    model, objective = build_model(config, num_classes=7)
    tx = optim.make_optimizer(config, steps_per_epoch=4)
    initial = run.init_state(model, tx, config, config.seed)
    step = jax.jit(
        train.make_train_step(model, objective, tx, config, class_weights=None),
        in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
    )
    state, metrics = step(jax.device_put(initial, parallel.replicated(mesh)), parallel.shard_batch(batch, mesh))
    return state, jax.device_get(metrics), initial, model, objective


def test_mixup_loss_is_the_lambda_mix_of_both_labels_losses():
    """Zhang et al. 2018 eq. 1, with the trainer's own keys: fold_in(key(seed + 2), step)."""
    config = toy_config(mixup_alpha=0.4)
    split = toy_data.make_split(16, 6)
    batch = {"image": split.images.astype(np.float32) / 127.5 - 1, "label": split.labels.astype(np.int32)}
    _, metrics, initial, model, objective = _one_step(config, parallel.make_mesh(), batch)
    lam_key, perm_key = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 2), 0))
    lam = float(jax.random.beta(lam_key, 0.4, 0.4))
    perm = np.asarray(jax.random.permutation(perm_key, 16))
    assert 0 < lam < 1 and not np.array_equal(perm, np.arange(16))
    images = lam * batch["image"] + (1 - lam) * batch["image"][perm]
    out, _ = model.apply({"params": initial.params, "batch_stats": initial.batch_stats}, images, train=True,
                         rngs={"dropout": jax.random.fold_in(jax.random.key(config.seed + 1), 0)}, mutable=["batch_stats", "losses"])
    loss_of = lambda y: float(np.mean(objective.per_example(out.head, y, 0)))  # noqa: E731
    expected = lam * loss_of(batch["label"]) + (1 - lam) * loss_of(batch["label"][perm])
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    _, plain, *_ = _one_step(toy_config(), parallel.make_mesh(), batch)
    assert abs(plain["loss"] - expected) > 1e-3  # mixing changed the loss


def test_mixup_step_is_the_same_on_one_and_eight_devices():
    config = toy_config(mixup_alpha=1.0, optimizer="sgd")  # Adam's first step is ±lr·sign(g): it would amplify rounding
    split = toy_data.make_split(16, 7)
    batch = {"image": split.images.astype(np.float32) / 127.5 - 1, "label": split.labels.astype(np.int32)}
    eight, m8, *_ = _one_step(config, parallel.make_mesh(), batch)
    one, m1, *_ = _one_step(config, parallel.make_mesh(jax.devices()[:1]), batch)
    assert m8["loss"] == pytest.approx(m1["loss"], rel=1e-5)
    for a, b in zip(jax.tree.leaves(jax.device_get(eight.params)), jax.tree.leaves(jax.device_get(one.params))):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("alpha", [-0.5, float("nan")])
def test_bad_mixup_alpha_is_a_one_line_error(alpha):
    with pytest.raises(ConfigError, match="config.mixup_alpha"):
        checks.check_training_config(toy_config(mixup_alpha=alpha), parallel.make_mesh())
