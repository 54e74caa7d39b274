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
RUN_SIZE = (48, 1)  # compiled and run; the other sizes are traced (init, forward, backward) abstractly
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


# Compile-time bound: the step graphs are tiny, so skip XLA's expensive CPU backend passes.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _train_step(config, px, ch):
    """Init + one SGD step at px×px×ch: the function of a PRNG key that the tests trace or run."""
    model = profile.build_classifier(config, NUM_CLASSES)
    tx = optax.sgd(0.01)
    labels = jnp.array([0, 1])

    def step(key):
        k_x, k_init, k_drop = jax.random.split(key, 3)
        x = jax.random.normal(k_x, (2, px, px, ch))
        variables = model.init({"params": k_init, "dropout": k_drop}, x[:1], train=False)
        params, batch_stats = variables["params"], variables.get("batch_stats", {})

        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True,
                rngs={"dropout": k_drop}, mutable=["batch_stats", "losses"],
            )
            penalty = sum(jnp.sum(t) for t in jax.tree.leaves(updates.get("losses", {})))
            loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out.head.logits, labels)) + penalty
            if out.aux_logits is not None:
                loss += 0.3 * jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out.aux_logits, labels))
            return loss, (out, penalty)

        (loss, (out, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        return dict(loss=loss, out=out, penalty=penalty, init_params=params, params=optax.apply_updates(params, updates))

    return step


def _run(config, px, ch):
    key = jax.random.key(0)
    return jax.jit(_train_step(config, px, ch)).lower(key).compile(compiler_options=FAST_COMPILE)(key)


@pytest.mark.parametrize("name", sorted(TINY))
def test_train_step_at_32_48_100(name):
    config = profile.model_config(name, aux_loss_weight=0.3, **TINY[name])
    for px, ch in SIZES:
        if (px, ch) == RUN_SIZE:
            result = _run(config, px, ch)
            assert np.isfinite(float(result["loss"])), name
            assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result["params"])), name
        else:
            result = jax.eval_shape(_train_step(config, px, ch), jax.random.key(0))
        assert result["out"].head.logits.shape == (2, NUM_CLASSES), (name, px)
        assert jax.tree.structure(result["params"]) == jax.tree.structure(result["init_params"]), (name, px)


def test_every_registered_model_is_tested():
    assert set(models.MODELS.names()) == set(TINY)


def test_emosynthnet_author_train_step_at_100_with_keras_l2_on_the_four_side_kernels():
    result = _run(profile.model_config("emosynthnet", variant="author", width=1 / 16), 100, 1)
    assert np.isfinite(float(result["loss"])) and result["out"].aux_logits is None
    side = result["init_params"]["backbone"]
    expected = sum(
        1e-3 * jnp.sum(side[m][c]["kernel"] ** 2) for m in ("side1", "side2") for c in ("conv3x3_2", "conv5x5_2")
    )
    np.testing.assert_allclose(result["penalty"], expected, rtol=1e-5)


@pytest.mark.parametrize("px", [32, 48])
def test_emosynthnet_author_rejects_small_inputs(px):
    model = profile.build_classifier(profile.model_config("emosynthnet", variant="author"), 7)
    with pytest.raises(ConfigError, match="64-100 px"):
        profile.abstract_variables(model, (1, px, px, 1))


def test_emosynthnet_aux_logits_only_in_training_and_only_when_weighted():
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    for weight, expect_aux in ((0.3, True), (0.0, False)):
        model = profile.build_classifier(profile.model_config("emosynthnet", aux_loss_weight=weight), 10)
        variables = profile.abstract_variables(model, (1, 32, 32, 3))
        assert ("aux" in variables["params"]["backbone"]) == expect_aux
        train_out, sown = jax.eval_shape(
            lambda v, x: model.apply(
                v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "losses"]
            ),
            variables, x,
        )
        assert (train_out.aux_logits.shape if expect_aux else train_out.aux_logits) == ((2, 10) if expect_aux else None)
        assert len(jax.tree.leaves(sown["losses"])) == 4
        assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).aux_logits is None


def test_baseline_cnn_convs_per_stage_repeats_the_conv_unit_and_defaults_to_the_seed():
    """convs_per_stage=2 adds one 3×3 conv + BatchNorm per stage; 1 (the default) is seed 004's net."""
    def counts(**hp):
        config = profile.model_config("baseline_cnn", conv_features=(4, 8), dense_features=(8,), dropout_rates=(0.1,), **hp)
        model = profile.build_classifier(config, NUM_CLASSES)
        variables = profile.abstract_variables(model, (1, 48, 48, 1))
        convs = [k for k in variables["params"]["backbone"] if k.startswith("Conv")]
        return len(convs), profile.count_variables(variables), profile.inference_cost(model, variables, (1, 48, 48, 1))

    (convs1, params1, cost1), (convs2, params2, cost2) = counts(), counts(convs_per_stage=2)
    assert (convs1, convs2) == (2, 4)
    # the second conv of stage 1 (4→4) and of stage 2 (8→8): 3×3 kernel + bias (the activation
    # comes before BatchNorm), and BatchNorm's scale, bias, mean and variance
    assert params2 - params1 == (9 * 4 * 4 + 4 + 4 * 4) + (9 * 8 * 8 + 8 + 4 * 8)
    assert cost2.depth == cost1.depth + 2
    assert counts(convs_per_stage=1)[:2] == (convs1, params1)


def test_camnet_rejects_widths_not_divisible_by_groups():
    config = profile.model_config("camnet", widths=(64, 128, 256, 512))
    with pytest.raises(ConfigError, match="divisible"):
        models.make_backbone(config, 7)


@pytest.mark.parametrize("name", ["emosynthnet", "camnet"])
def test_bfloat16_compute_keeps_float32_parameters_and_logits(name):
    config = profile.model_config(name, aux_loss_weight=0.3, **TINY[name])
    config.dtype = "bfloat16"
    model = profile.build_classifier(config, NUM_CLASSES)
    variables = profile.abstract_variables(model, (1, 48, 48, 1))
    out, _ = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats", "losses"]),
        variables, jax.ShapeDtypeStruct((2, 48, 48, 1), jnp.float32),
    )
    assert out.embedding.dtype == jnp.bfloat16 and out.head.logits.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
