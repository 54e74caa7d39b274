"""Training and evaluation loop: ``train_and_evaluate(config, workdir)`` (SPEC §1, §2, §9).

Pure jitted train/eval steps, data-parallel over every local device on a 1-D mesh (batch
sharded, state replicated), orbax checkpoints (periodic + best on validation), exact
resumption (the data order and dropout keys are functions of the step), and a stop with
the step number when the loss turns NaN/Inf.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from tqdm import tqdm

from ferjax import losses, models, optim, parallel
from ferjax.checkpoint import Checkpoints, abstract_like
from ferjax.data import DatasetSplits, load_dataset, pipeline
from ferjax.data.sources import labels_of
from ferjax.errors import ConfigError, TrainingDiverged
from ferjax.heads import HEADS
from ferjax.losses.softmax import softmax_cross_entropy
from ferjax.metrics import classification_metrics, classification_report_text
from ferjax.models.classifier import Classifier
from ferjax.plots import save_confusion_matrix, save_training_curves
from ferjax.writer import MetricWriter


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: number of updates applied
    params: Any
    batch_stats: Any
    opt_state: Any


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> tuple[Classifier, losses.Objective]:
    """The classifier (backbone + the head the loss needs) and the training objective."""
    objective = losses.make_objective(config)
    backbone = models.make_backbone(config, num_classes)
    head = HEADS[objective.head](num_classes=num_classes, **dict(objective.head_kwargs))
    return Classifier(backbone=backbone, head=head), objective


def init_state(model: nn.Module, tx: optax.GradientTransformation, config, seed: int) -> TrainState:
    shape = (1, config.image_size, config.image_size, config.channels)
    variables = model.init(jax.random.key(seed), jnp.zeros(shape, jnp.float32), train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
    )


def class_weights_for(source, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights normalised to mean 1 over present classes."""
    counts = np.bincount(labels_of(source), minlength=num_classes)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / np.count_nonzero(counts), 0.0)
    return weights.astype(np.float32)


def make_train_step(model, objective, tx, config, class_weights) -> Callable:
    """One pure update: loss (+ aux classifier, + model regularisers), grads, optimizer step."""
    aux_weight = float(config.aux_loss_weight)
    dropout_key = jax.random.key(config.seed + 1)

    def train_step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(dropout_key, state.step)
        labels = batch["label"]

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            out, updates = model.apply(
                variables, batch["image"], train=True, rngs={"dropout": rng}, mutable=["batch_stats", "losses"]
            )
            per_example = objective.per_example(out.head, labels, state.step).astype(jnp.float32)
            if class_weights is not None:
                weights = jnp.asarray(class_weights)[labels]
                loss = jnp.sum(weights * per_example) / jnp.sum(weights)
            else:
                loss = jnp.mean(per_example)
            total = loss
            if out.aux_logits is not None and aux_weight > 0:
                total = total + aux_weight * jnp.mean(softmax_cross_entropy(out.aux_logits, labels))
            regularisers = jax.tree.leaves(updates.get("losses", {}))
            if regularisers:
                total = total + sum(jnp.sum(r) for r in regularisers)
            return total, (out, updates.get("batch_stats", {}))

        (loss, (out, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
        accuracy = jnp.mean(jnp.argmax(out.head.logits, -1) == labels)
        return new_state, {"loss": loss, "accuracy": accuracy}

    return train_step


def make_eval_step(model) -> Callable:
    """Un-margined logits (SPEC §4: evaluation never applies a margin) and their CE."""

    def eval_step(state: TrainState, batch: dict):
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        out = model.apply(variables, batch["image"], train=False)
        logits = out.head.logits.astype(jnp.float32)
        return jnp.argmax(logits, -1), softmax_cross_entropy(logits, batch["label"])

    return eval_step


def evaluate(eval_step, state, source, config, mesh, class_names) -> dict:
    """Metrics on a whole split: padded last batch masked out, nothing dropped."""
    predictions, labels, ce = [], [], []
    for batch in pipeline.eval_batches(source, config):
        mask = parallel.gather(batch.pop("mask"))
        pred, loss = eval_step(state, parallel.shard_batch(batch, mesh))
        predictions.append(parallel.gather(pred)[mask])
        labels.append(parallel.gather(batch["label"])[mask])
        ce.append(parallel.gather(loss)[mask])
    labels_all, preds_all = np.concatenate(labels), np.concatenate(predictions)
    result = classification_metrics(labels_all, preds_all, class_names)
    result["loss"] = float(np.mean(np.concatenate(ce)))
    result["_labels"], result["_predictions"] = labels_all, preds_all
    return result


def _public(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def _check_finite(step0: int, losses_since_log: list, state: TrainState) -> None:
    values = np.asarray(jax.device_get(losses_since_log))
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TrainingDiverged(
            f"loss became {values[bad[0]]} at step {step0 + bad[0] + 1}; stopping "
            "(the last good checkpoint is kept in checkpoints/latest)"
        )


def _params_finite(state: TrainState) -> bool:
    return bool(jax.device_get(jax.tree.reduce(lambda a, x: a & jnp.all(jnp.isfinite(x)), state.params, True)))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Train ``config`` in ``workdir`` (resuming if it holds a checkpoint); return report.json's dict."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    mesh = parallel.make_mesh()
    for key in ("batch_size", "eval_batch_size"):
        parallel.check_batch_divisible(config[key], mesh, key)
    if config.dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"config.dtype={config.dtype!r}; valid: float32, bfloat16")

    splits: DatasetSplits = load_dataset(config)
    for note in splits.notes:
        print(f"[{splits.name}] {note}")
    class_names = list(splits.class_names)
    model, objective = build_model(config, splits.num_classes)
    steps_per_epoch = pipeline.steps_per_epoch(splits.train, config)
    total_steps = steps_per_epoch * config.num_epochs
    tx = optax.with_extra_args_support(optim.make_optimizer(config, steps_per_epoch))
    class_weights = class_weights_for(splits.train, splits.num_classes) if config.class_weighting else None

    replicated = parallel.replicated(mesh)
    state = jax.device_put(init_state(model, tx, config, config.seed), replicated)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    meta = {"best_validation_accuracy": -1.0, "best_step": None, "epoch_evaluated": 0}
    start_step = checkpoints.latest_step() or 0
    if start_step:
        state, meta = checkpoints.restore(start_step, abstract_like(state, replicated))
        print(f"Resuming from step {start_step} in {workdir}")
    writer = MetricWriter(workdir, truncate_after_step=start_step)

    train_step = jax.jit(
        make_train_step(model, objective, tx, config, class_weights),
        in_shardings=(replicated, parallel.data_sharded(mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    eval_step = jax.jit(make_eval_step(model), out_shardings=parallel.data_sharded(mesh))
    run_eval = functools.partial(evaluate, eval_step, config=config, mesh=mesh, class_names=class_names)

    stop_step = total_steps if config.max_steps <= 0 else min(total_steps, config.max_steps)
    step = start_step
    batches = pipeline.train_batches(splits.train, config, start_step=start_step)
    pending: list = []  # device metrics since the last log, fetched together (no per-step sync)
    progress = tqdm(total=stop_step, initial=step, disable=not config.progress_bar, unit="step", dynamic_ncols=True)
    try:
        while step < stop_step:
            batch = parallel.shard_batch(next(batches), mesh)
            state, step_metrics = train_step(state, batch)
            pending.append(step_metrics)
            step += 1
            progress.update(1)
            epoch_end = step % steps_per_epoch == 0
            if step % config.log_every_steps == 0 or epoch_end or step == stop_step:
                _check_finite(step - len(pending), [m["loss"] for m in pending], state)
                fetched = jax.device_get(pending)
                train_metrics = {k: float(np.mean([m[k] for m in fetched])) for k in ("loss", "accuracy")}
                lr = optim.current_learning_rate(state.opt_state)
                if lr is not None:
                    train_metrics["learning_rate"] = float(jax.device_get(lr))
                writer.write(step, "train", train_metrics)
                progress.set_postfix(loss=f"{train_metrics['loss']:.4f}", acc=f"{train_metrics['accuracy']:.3f}")
                pending = []
            if epoch_end and splits.validation is not None:
                val = run_eval(state, splits.validation)
                writer.write(step, "validation", _public(val) | {"epoch": step // steps_per_epoch})
                if val["accuracy"] > meta["best_validation_accuracy"]:
                    meta.update(best_validation_accuracy=val["accuracy"], best_step=step)
                    checkpoints.save_best(step, state, meta, val["accuracy"])
            if step % config.checkpoint_every_steps == 0 or epoch_end or step == stop_step:
                if not _params_finite(state):
                    raise TrainingDiverged(f"parameters became non-finite at step {step}; stopping (the last good checkpoint is kept in checkpoints/latest)")
                checkpoints.save(step, state, meta)
    finally:
        progress.close()
        checkpoints.wait()

    report = _final_report(config, workdir, splits, state, checkpoints, meta, run_eval, writer, replicated)
    report.update(
        steps=step, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
        stopped_early=step < total_steps, devices=mesh.size, platform=jax.default_backend(),
        wall_seconds=round(time.time() - started, 1),
    )
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    writer.close()
    checkpoints.close()
    return report


def _final_report(config, workdir, splits, state, checkpoints, meta, run_eval, writer, sharding) -> dict:
    """Evaluate the selected model (best on validation, else last) on validation and test."""
    selected = "last"
    if checkpoints.best_step() is not None:
        state, _ = checkpoints.restore(checkpoints.best_step(), abstract_like(state, sharding), best=True)
        selected = f"best on validation (step {checkpoints.best_step()})"
    report: dict = {
        "dataset": splits.name, "model": config.model, "loss": config.loss, "optimizer": config.optimizer,
        "class_names": list(splits.class_names), "notes": list(splits.notes), "selected_model": selected,
        "config": json.loads(config.to_json_best_effort()), "splits": {},
    }
    step = int(jax.device_get(state.step))
    for split_name in ("validation", "test"):
        source = getattr(splits, split_name)
        if source is None:
            print(f"[{splits.name}] no {split_name} split: not reported")
            continue
        metrics = run_eval(state, source)
        report["splits"][split_name] = _public(metrics)
        writer.write(step, f"final_{split_name}", _public(metrics))
        title = f"{splits.name} {split_name}: accuracy {metrics['accuracy']:.2%} ({selected})"
        save_confusion_matrix(metrics["confusion_matrix"], splits.class_names, workdir / f"confusion_{split_name}.png", title)
        print(f"\n{title}\n" + classification_report_text(metrics["_labels"], metrics["_predictions"], splits.class_names))
    writer.flush()
    save_training_curves(writer.path, workdir / "training_curves.png")
    return report
