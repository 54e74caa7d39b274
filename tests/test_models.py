"""Every registered model builds at 32, 48 and 100 px and takes one jitted train step (issue 5).

Widths and depths are reduced (the full-size figures are gated, allocation-free, in
test_models_table.py); one compilation per model covers all three resolutions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import models
from ferjax.errors import ConfigError
from ferjax.models import profile

SIZES = ((32, 3), (48, 1), (100, 1))  # (pixels, channels)
NUM_CLASSES = 7

TINY = {
    "baseline_cnn": dict(conv_features=(4, 4, 4), dense_features=(8, 8, 8, 8)),
    "resnet18": dict(width=4, stage_sizes=(1, 1, 1, 1)),
    "resnet34": dict(width=4, stage_sizes=(1, 1, 1, 1)),
    "se_resnet34": dict(width=16, stage_sizes=(1, 1, 1, 1)),
    "resnet50": dict(width=4, stage_sizes=(1, 1, 1, 1)),
    "vgg19": dict(width=4, stage_depths=(1, 1, 1, 1, 1), fc_features=8),
    "densenet121": dict(block_sizes=(1, 1, 1, 1), growth_rate=4, stem_features=8),
    "mobilenet_v2": dict(alpha=0.1),
    "efficientnet_b0": dict(width_coefficient=0.1, depth_coefficient=0.1),
    "emosynthnet": dict(width=1 / 16),
    "camnet": dict(widths=(24, 24, 24, 24), stage_sizes=(1, 1, 1, 1)),
}


def _train_steps(config, sizes):
    """Init at each size, then one jitted SGD step per size (a single compilation)."""
    model = profile.build_classifier(config, NUM_CLASSES)
    tx = optax.sgd(0.01)
    keys = iter(jax.random.split(jax.random.key(0), 3 * len(sizes)))
    states, batches = [], []
    for px, ch in sizes:
        x = jax.random.normal(next(keys), (2, px, px, ch))
        variables = model.init({"params": next(keys), "dropout": next(keys)}, x[:1], train=False)
        states.append((variables["params"], variables.get("batch_stats", {})))
        batches.append((x, jnp.array([0, 1])))

    def step(params, batch_stats, x, labels):
        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True,
                rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "losses"],
            )
            loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out.head.logits, labels))
            if out.aux_logits is not None:
                loss += 0.3 * jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out.aux_logits, labels))
            loss += sum(jnp.sum(t) for t in jax.tree.leaves(updates.get("losses", {})))
            return loss, (out, updates["batch_stats"] if "batch_stats" in updates else batch_stats)

        (loss, (out, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        return optax.apply_updates(params, updates), new_stats, loss, out

    @jax.jit
    def all_steps(states, batches):
        return [step(p, s, x, y) for (p, s), (x, y) in zip(states, batches)]

    return all_steps(states, batches)


@pytest.mark.parametrize("name", sorted(TINY))
def test_train_step_at_32_48_100(name):
    config = profile.model_config(name, aux_loss_weight=0.3, **TINY[name])
    for (px, _), (params, _, loss, out) in zip(SIZES, _train_steps(config, SIZES)):
        assert np.isfinite(float(loss)), (name, px)
        assert out.head.logits.shape == (2, NUM_CLASSES), (name, px)
        assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params)), (name, px)


def test_every_registered_model_is_tested():
    assert set(models.MODELS.names()) == set(TINY)


def test_emosynthnet_author_train_step_at_100():
    config = profile.model_config("emosynthnet", variant="author", width=1 / 16)
    ((params, _, loss, out),) = _train_steps(config, ((100, 1),))
    assert np.isfinite(float(loss)) and out.aux_logits is None


@pytest.mark.parametrize("px", [32, 48])
def test_emosynthnet_author_rejects_small_inputs(px):
    model = profile.build_classifier(profile.model_config("emosynthnet", variant="author"), 7)
    with pytest.raises(ConfigError, match="64-100 px"):
        profile.abstract_variables(model, (1, px, px, 1))


def test_emosynthnet_aux_logits_only_in_training_and_only_when_weighted():
    x = jnp.zeros((2, 32, 32, 3))
    for weight, expect_aux in ((0.3, True), (0.0, False)):
        config = profile.model_config("emosynthnet", aux_loss_weight=weight, width=1 / 16)
        model = profile.build_classifier(config, 10)
        variables = model.init(jax.random.key(0), x, train=False)
        assert ("aux" in variables["params"]["backbone"]) == expect_aux
        train_out, _ = model.apply(
            variables, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "losses"]
        )
        assert (train_out.aux_logits is not None) == expect_aux
        if expect_aux:
            assert train_out.aux_logits.shape == (2, 10)
        assert model.apply(variables, x, train=False).aux_logits is None


def test_emosynthnet_sows_keras_l2_on_the_four_side_kernels():
    model = profile.build_classifier(profile.model_config("emosynthnet", variant="author", width=1 / 16), 7)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 100, 100, 1)), train=False)
    _, mutated = model.apply(
        {"params": variables["params"], "batch_stats": variables["batch_stats"]}, jnp.zeros((2, 100, 100, 1)),
        train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "losses"],
    )
    sown = jax.tree_util.tree_flatten_with_path(mutated["losses"])[0]
    assert len(sown) == 4
    side = variables["params"]["backbone"]
    expected = sum(
        1e-3 * jnp.sum(side[m][c]["kernel"] ** 2) for m in ("side1", "side2") for c in ("conv3x3_2", "conv5x5_2")
    )
    np.testing.assert_allclose(sum(v for _, v in sown), expected, rtol=1e-5)


def test_camnet_rejects_widths_not_divisible_by_groups():
    config = profile.model_config("camnet", widths=(64, 128, 256, 512))
    with pytest.raises(ConfigError, match="divisible"):
        models.make_backbone(config, 7)
