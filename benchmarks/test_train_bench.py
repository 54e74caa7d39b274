"""Trainer benchmarks (issue 2, item 7): train-step images/s at 48×48×1 and first-step compile time.

Uses the trainer's own jitted step (``ferjax.train.make_train_step``) on every local device,
batch 64, random images, softmax CE, Adam.

    pytest benchmarks/test_train_bench.py --benchmark-columns=min,median -s
"""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from ferjax import optim, parallel, run, train
from ferjax.models.classifier import build_model
from ferjax.config import get_config

BATCH = 64
SIZE = 48


def _config(model: str):
    c = get_config()
    c.model = model
    c.image_size, c.channels, c.batch_size = SIZE, 1, BATCH
    return c


def _compiled_step(model_name: str):
    config = _config(model_name)
    mesh = parallel.make_mesh()
    model, objective = build_model(config, num_classes=7)
    tx = optim.make_optimizer(config, steps_per_epoch=100)
    state = jax.device_put(run.init_state(model, tx, config, seed=0), parallel.replicated(mesh))
    step = jax.jit(
        train.make_train_step(model, objective, tx, config, class_weights=None),
        in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
        donate_argnums=0,
    )
    rng = np.random.default_rng(0)
    batch = parallel.shard_batch(
        {
            "image": rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 1)).astype(np.float32),
            "label": rng.integers(0, 7, BATCH).astype(np.int32),
        },
        mesh,
    )
    return step, state, batch


@pytest.mark.parametrize("model_name", ["baseline_cnn", "resnet18"])
def test_train_step_images_per_second(benchmark, model_name):
    step, state, batch = _compiled_step(model_name)
    state, metrics = step(state, batch)  # compile + warm up
    jax.block_until_ready(metrics)
    holder = {"state": state}

    def one_step():
        holder["state"], m = step(holder["state"], batch)
        jax.block_until_ready(m)

    benchmark.pedantic(one_step, rounds=5, iterations=1, warmup_rounds=1)
    images_per_second = BATCH / benchmark.stats.stats.min
    benchmark.extra_info["images_per_second"] = round(images_per_second, 1)
    print(f"\n{model_name} train step 48x48x1 batch {BATCH}: {images_per_second:.1f} images/s "
          f"({jax.default_backend()}, {jax.device_count()} device(s))")
    assert images_per_second > 0


@pytest.mark.parametrize("model_name", ["baseline_cnn", "resnet18"])
def test_first_step_compile_seconds(benchmark, model_name):
    def compile_once():
        step, state, batch = _compiled_step(model_name)
        started = time.perf_counter()
        step.lower(state, batch).compile()
        return time.perf_counter() - started

    seconds = benchmark.pedantic(compile_once, rounds=1, iterations=1)
    benchmark.extra_info["compile_seconds"] = round(seconds, 2)
    print(f"\n{model_name} first-step compile: {seconds:.2f} s")
    assert seconds > 0
