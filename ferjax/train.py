"""Training loop: ``train_and_evaluate(config, workdir)`` (SPEC §1, §2, §9).

Pure jitted train steps, data-parallel over every device of a 1-D mesh (batch sharded, state
replicated), verified orbax checkpoints (periodic + best on validation), exact resumption (the
data order and dropout keys are functions of the step), and a stop with the step number when
the loss turns NaN/Inf. ``run.json`` (:mod:`ferjax.run`) is written when a run starts; a rerun
must have the same config (up to :data:`ferjax.run.HARMLESS_KEYS` and the options of components it
does not use), and a rerun of a finished run returns its report without evaluating again. Ctrl-C
or SIGTERM stops after the step in progress, with a checkpoint; a full disk stops with the previous
one kept.
Evaluation is :mod:`ferjax.evaluation`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from ferjax import checks, evaluation, finetune, optim, parallel, run, xla_options
from ferjax.checkpoint import Checkpoints, NoSpace, abstract_like
from ferjax.config import get_config
from ferjax.data import DatasetSplits, load_dataset, pipeline
from ferjax.data.sources import labels_of
from ferjax.errors import CheckpointError, FerjaxError, RunError, TrainingDiverged, TrainingInterrupted
from ferjax.losses.softmax import softmax_cross_entropy
from ferjax.models.classifier import build_model
from ferjax.plots import save_training_curves
from ferjax.run import TrainState
from ferjax.writer import MetricWriter

REPORT_FILE = "report.json"


def class_weights_for(source, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights normalised to mean 1 over present classes."""
    counts = np.bincount(labels_of(source), minlength=num_classes)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / np.count_nonzero(counts), 0.0)
    return weights.astype(np.float32)


def make_train_step(model, objective, tx, config, class_weights, frozen_backbone: bool = False) -> Callable:
    """One pure update: loss (+ aux classifier, + model regularisers), grads, optimizer step.

    ``frozen_backbone``: the model runs in inference mode, BatchNorm statistics kept (:mod:`ferjax.finetune`).
    ``config.mixup_alpha`` > 0: mixup (Zhang et al. 2018, eq. 1) on the global batch: images
    λ·x + (1−λ)·x[π], loss λ·L(y) + (1−λ)·L(y[π]), one λ ~ Beta(α, α) and one permutation π per
    step, drawn from ``fold_in(key(seed + 2), step)``; accuracy is against the unmixed labels.
    A state that keeps an average of the weights (``config.ema_decay`` > 0) updates it after the
    optimizer step (:func:`ferjax.run.ema_update`).
    """
    aux_weight = float(config.aux_loss_weight)
    mixup_alpha = float(config.mixup_alpha)
    dropout_key = jax.random.key(config.seed + 1)
    mixup_key = jax.random.key(config.seed + 2)

    def mean_loss(per_example, labels):
        if class_weights is None:
            return jnp.mean(per_example)
        weights = jnp.asarray(class_weights)[labels]
        return jnp.sum(weights * per_example) / jnp.sum(weights)

    def train_step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(dropout_key, state.step)
        images, labels = batch["image"], batch["label"]
        if mixup_alpha > 0:
            lam_key, perm_key = jax.random.split(jax.random.fold_in(mixup_key, state.step))
            lam = jax.random.beta(lam_key, mixup_alpha, mixup_alpha)
            perm = jax.random.permutation(perm_key, labels.shape[0])
            images = lam * images + (1 - lam) * images[perm]

        def mixed(loss_of):
            """``loss_of(labels)`` (a scalar), mixed as the images are when mixup is on."""
            if mixup_alpha > 0:
                return lam * loss_of(labels) + (1 - lam) * loss_of(labels[perm])
            return loss_of(labels)

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            out, updates = model.apply(
                variables, images, train=not frozen_backbone, rngs={"dropout": rng}, mutable=["batch_stats", "losses"]
            )
            loss = mixed(lambda y: mean_loss(objective.per_example(out.head, y, state.step).astype(jnp.float32), y))
            total = loss
            if out.aux_logits is not None and aux_weight > 0:
                total = total + aux_weight * mixed(lambda y: jnp.mean(softmax_cross_entropy(out.aux_logits, y)))
            regularisers = jax.tree.leaves(updates.get("losses", {}))
            if regularisers:
                total = total + sum(jnp.sum(r) for r in regularisers)
            return total, (out, state.batch_stats if frozen_backbone else updates.get("batch_stats", {}))

        (loss, (out, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
        if state.ema_params is not None:
            new_state = new_state.replace(ema_params=run.ema_update(state.ema_params, params, new_state.step, config.ema_decay))
        accuracy = jnp.mean(jnp.argmax(out.head.logits, -1) == labels)
        return new_state, {"loss": loss, "accuracy": accuracy}

    return train_step


def make_logits_fn(model, mesh, config) -> Callable:
    """``(state, local float32 images) -> global logits`` on the host: the evaluator's input
    (the average of the weights when the run keeps one: :func:`ferjax.run.evaluated_variables`)."""

    def logits(state: TrainState, images):
        return model.apply(run.evaluated_variables(state), images, train=False).head.logits.astype(jnp.float32)

    jitted = jax.jit(logits, out_shardings=parallel.data_sharded(mesh), compiler_options=xla_options.compiler_options(config))
    return lambda state, images: parallel.gather(jitted(state, parallel.shard_batch(images, mesh)))


def _first_non_finite(step0: int, losses: list) -> None:
    values = np.asarray(jax.device_get(losses))
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise _Diverged(f"loss became {values[bad[0]]} at step {step0 + bad[0] + 1}")


def _params_finite(state: TrainState) -> bool:
    return bool(jax.device_get(jax.tree.reduce(lambda a, x: a & jnp.all(jnp.isfinite(x)), state.params, True)))


class _Diverged(Exception):
    pass


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, mesh: jax.sharding.Mesh | None = None) -> dict:
    """Train ``config`` in ``workdir`` (resuming if it holds a checkpoint); return report.json's dict.

    ``mesh``: the 1-D ``"data"`` mesh to train on (default: every device, :func:`ferjax.parallel.make_mesh`).
    A full disk or an unwritable workdir is a one-line :class:`ferjax.errors.FerjaxError` (the previous
    checkpoint kept); Ctrl-C or SIGTERM stops after the step in progress, with a checkpoint
    (:class:`ferjax.errors.TrainingInterrupted`).
    """
    workdir = Path(workdir)
    try:
        return _train_and_evaluate(config, workdir, mesh)
    except NoSpace as error:
        raise CheckpointError(f"{error}; {_kept(workdir)}") from None
    except FerjaxError:
        raise  # already one line, naming its own file or folder (e.g. a full dataset cache)
    except Exception as error:
        if _is_disk_full(error):  # orbax/tensorstore report ENOSPC in their own exception types
            raise FerjaxError(f"cannot write to {workdir}: no space left on device; {_kept(workdir)}") from None
        if isinstance(error, OSError):
            raise FerjaxError(f"{error.filename or workdir}: {error.strerror or error}") from None
        raise


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: Path, mesh: jax.sharding.Mesh | None) -> dict:
    started = time.time()
    mesh = mesh or parallel.make_mesh()
    checks.check_training_config(config, mesh)
    checks.prepare_workdir(workdir)
    previous = _check_rerun(config, workdir)

    splits: DatasetSplits = load_dataset(config)
    for note in splits.notes:
        parallel.say(f"[{splits.name}] {note}")
    class_names = list(splits.class_names)
    steps_per_epoch = pipeline.steps_per_epoch(splits.train, config)
    total_steps = steps_per_epoch * config.num_epochs
    if previous is not None and _finished(previous, total_steps):
        parallel.say(f"{workdir} already finished ({previous['steps']} steps): nothing to do; report in {workdir / REPORT_FILE}")
        return previous

    if config.init_from and not _checkpoint_steps(workdir):
        finetune.check_source(config, class_names)  # in seconds, before the model is built
    model, objective = build_model(config, splits.num_classes)
    tx = finetune.freeze_backbone(optim.make_optimizer(config, steps_per_epoch), config, steps_per_epoch)
    class_weights = class_weights_for(splits.train, splits.num_classes) if config.class_weighting else None
    replicated = parallel.replicated(mesh)
    state = jax.device_put(checks.built(lambda: run.init_state(model, tx, config, config.seed), config), replicated)
    target = abstract_like(state, replicated)
    origin = None  # init_from: only a run's first start (no checkpoint yet) loads another run's weights
    if config.init_from and not _checkpoint_steps(workdir):
        state, origin = finetune.start_from(config, state, tx, class_names, mesh)
        if (workdir / run.RUN_FILE).exists():
            finetune.check_same_origin(run.read_record(workdir), origin, workdir)
    if parallel.is_primary() and not (workdir / run.RUN_FILE).exists():  # only once the model builds: a bad config records nothing
        record = run.make_record(config, splits.name, class_names)
        run.write_record(workdir, record | ({"init_from": origin} if origin else {}))

    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    writer = None
    try:
        meta = {"best_validation_accuracy": -1.0}
        try:
            resumed = checkpoints.restore_newest(lambda s: checkpoints.restore(s, target))
        except CheckpointError as error:
            raise CheckpointError(f"{error}; rerun to train from step 0, or use a new --workdir") from None
        start_step = 0
        if resumed is not None:
            start_step, (state, meta) = resumed
            parallel.say(f"Resuming from step {start_step} in {workdir}")
        checkpoints.discard_best_after(start_step)  # written after the restored step: redone exactly
        writer = MetricWriter(workdir, resume_step=start_step)
        step = _train(config, splits, model, objective, tx, class_weights, mesh, state, meta, checkpoints, writer,
                      start_step, steps_per_epoch, total_steps)
        report = _final_report(config, workdir, splits, model, mesh, checkpoints, target, writer)
        report.update(
            steps=step, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
            stopped_early=step < total_steps, devices=mesh.size, platform=jax.default_backend(),
            wall_seconds=round(time.time() - started, 1),
        )
        if parallel.is_primary():
            (workdir / REPORT_FILE).write_text(json.dumps(report, indent=2))
        return report
    finally:
        _close(checkpoints, writer)


def _close(checkpoints: Checkpoints, writer: MetricWriter | None) -> None:
    """On every exit: pending checkpoint writes finished (a failed one's partial folders removed),
    the managers closed, then the writer (last: it can flush once a failed write's space is freed)."""
    try:
        checkpoints.wait()
    finally:
        try:
            checkpoints.close()
        finally:
            if writer is not None:
                writer.close()


def _train(config, splits, model, objective, tx, class_weights, mesh, state, meta, checkpoints, writer,
           start_step, steps_per_epoch, total_steps) -> int:
    """The training loop from ``start_step``; returns the step it stopped at."""
    train_steps = [  # [step, step with the backbone frozen]; jit compiles each when first called
        jax.jit(
            make_train_step(model, objective, tx, config, class_weights, frozen_backbone=frozen),
            in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)),
            out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
            donate_argnums=0,
            compiler_options=xla_options.compiler_options(config),
        )
        for frozen in (False, True)
    ]
    freeze_steps = finetune.frozen_steps(config, steps_per_epoch)
    logits_fn = make_logits_fn(model, mesh, config)
    stop_step = total_steps if config.max_steps <= 0 else min(total_steps, config.max_steps)
    step = start_step
    batches = pipeline.train_batches(splits.train, config, start_step=start_step)
    pending: list = []  # device metrics since the last log, fetched together (no per-step sync)
    saved_step = start_step or None  # the newest step in checkpoints/latest
    progress = tqdm(total=stop_step, initial=step, disable=not (config.progress_bar and parallel.is_primary()), unit="step", dynamic_ncols=True)
    try:
        with _ctrl_c_stops_after_step() as ctrl_c:
            while step < stop_step:
                batch = parallel.shard_batch(next(batches), mesh)
                state, step_metrics = train_steps[step < freeze_steps](state, batch)
                pending.append(step_metrics)
                step += 1
                progress.update(1)
                epoch_end = step % steps_per_epoch == 0
                if step % config.log_every_steps == 0 or epoch_end or step == stop_step:
                    _first_non_finite(step - len(pending), [m["loss"] for m in pending])
                    fetched = jax.device_get(pending)
                    train_metrics = {k: float(np.mean([m[k] for m in fetched])) for k in ("loss", "accuracy")}
                    lr = optim.current_learning_rate(state.opt_state)
                    if lr is not None:
                        train_metrics["learning_rate"] = float(jax.device_get(lr))
                    writer.write(step, "train", train_metrics)
                    progress.set_postfix(loss=f"{train_metrics['loss']:.4f}", acc=f"{train_metrics['accuracy']:.3f}")
                    pending = []
                if epoch_end and splits.validation is not None:
                    scores = evaluation.score_split(lambda x: logits_fn(state, x), splits.validation, config)
                    val = evaluation.metrics(scores, splits.class_names)
                    writer.write(step, "validation", val | {"epoch": step // steps_per_epoch})
                    if val["accuracy"] > meta["best_validation_accuracy"]:
                        meta["best_validation_accuracy"] = val["accuracy"]
                        checkpoints.save_best(step, state, meta, val["accuracy"])
                due = step % config.checkpoint_every_steps == 0 or epoch_end or step == stop_step
                if due or ctrl_c.is_set():
                    _first_non_finite(step - len(pending), [m["loss"] for m in pending])  # never save past a NaN
                    if not _params_finite(state):
                        raise _Diverged(f"parameters became non-finite at step {step}")
                    checkpoints.save(step, state, meta)
                    saved_step = step
                if ctrl_c.is_set():  # the checkpoint's write finishes before the message prints
                    raise TrainingInterrupted(
                        f"interrupted at step {step} (checkpoint saved in {checkpoints.directory('latest')}); "
                        "resume with the same command"
                    )
    except _Diverged as diverged:
        kept = (f"the last good checkpoint, step {saved_step}, is kept in {checkpoints.directory('latest')}"
                if saved_step else "no checkpoint was written before it")
        raise TrainingDiverged(f"{diverged}; stopping ({kept})") from None
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the newest checkpoint is what resumes
        kept = f"checkpoint at step {saved_step}" if saved_step else "no checkpoint yet"
        raise TrainingInterrupted(f"interrupted at step {step} ({kept}); resume with the same command") from None
    finally:
        progress.close()
    return step


@contextlib.contextmanager
def _ctrl_c_stops_after_step() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM sets the yielded event: the loop finishes the step in progress (its logs,
    validation and a checkpoint), so the resumed run equals an uninterrupted one. A second one
    interrupts at once. SIGTERM is how `kill`, batch schedulers and job runners stop a job, and
    the only stop a background job gets (a shell starts those with Ctrl-C ignored). Only the main
    thread receives signals; elsewhere, and for a signal the process ignores, Python's behaviour
    is kept."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
    previous = {sig: signal.getsignal(sig) for sig in names}
    caught = [sig for sig, handler in previous.items() if handler not in (None, signal.SIG_IGN)]

    def handler(signum, frame):
        signal.signal(signum, previous[signum])
        requested.set()
        print(f"\n{names[signum]}: stopping after this step, with a checkpoint (again to stop at once)", flush=True)

    for sig in caught:
        signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig in caught:
            signal.signal(sig, previous[sig])


def _final_report(config, workdir, splits, model, mesh, checkpoints, target, writer) -> dict:
    """Evaluate the selected model (best on validation, else the last) on validation and test."""
    checkpoints.wait()
    try:
        best = checkpoints.restore_newest(lambda s: checkpoints.restore(s, target, kind="best"), kind="best")
    except CheckpointError:  # every best step damaged (each said so and moved): report the last one
        best = None
    if best is not None:
        step, (state, _) = best
        selected = f"best on validation (step {step})"
    else:
        step, (state, _) = checkpoints.restore_newest(lambda s: checkpoints.restore(s, target))
        why = "no validation split to select on" if splits.validation is None else "no intact best checkpoint"
        selected = f"last (step {step}; {why})"
    logits_fn = make_logits_fn(model, mesh, config)
    report: dict = {
        "dataset": splits.name, "model": config.model, "loss": config.loss, "optimizer": config.optimizer,
        "class_names": list(splits.class_names), "notes": list(splits.notes), "selected_model": selected,
        "config": run.config_dict(config), "splits": {},
    }
    for split_name in ("validation", "test"):
        source = getattr(splits, split_name)
        if source is None:
            parallel.say(f"[{splits.name}] no {split_name} split: not reported")
            continue
        scores = evaluation.score_split(lambda x: logits_fn(state, x), source, config)
        result = evaluation.metrics(scores, splits.class_names)
        report["splits"][split_name] = result
        writer.write(step, f"final_{split_name}", result)
        if parallel.is_primary():
            title = f"{splits.name} {split_name}: accuracy {result['accuracy']:.2%} ({selected})"
            text = evaluation.write_split_outputs(result, scores, splits.class_names, workdir / f"confusion_{split_name}.png", title)
            print(f"\n{title}\n{text}")
    writer.flush()
    if parallel.is_primary():
        save_training_curves(writer.events, workdir / "training_curves.png")
    return report


def _check_rerun(config: ml_collections.ConfigDict, workdir: Path) -> dict | None:
    """Compare a rerun's config with the run's run.json; the finished run's report, if any."""
    path = workdir / run.RUN_FILE
    if not path.exists():
        if (workdir / "checkpoints").exists():
            parallel.say(f"{workdir} has checkpoints but no {run.RUN_FILE} (an older ferjax): recording this config, unchecked")
        return None
    record = run.read_record(workdir)
    differences = _result_changing_differences(record["config"], run.config_dict(config))
    if differences:
        shown = ", ".join(differences[:8]) + (f" and {len(differences) - 8} more" if len(differences) > 8 else "")
        raise RunError(
            f"{workdir} holds a run with another config ({shown} differ from {path}); "
            "use a new --workdir, or the run's own settings to resume it"
        )
    report_path = workdir / REPORT_FILE
    if not report_path.exists():
        return None
    try:
        return json.loads(report_path.read_text())
    except ValueError:
        return None  # a damaged report is rewritten by finishing the run again


# Hyperparameter groups, each selected by a top-level key: only the selected component's group matters.
_SELECTED = {"models": "model", "losses": "loss", "optimizers": "optimizer", "datasets": "dataset"}


def _result_changing_differences(recorded: dict, now: dict) -> list[str]:
    """Dotted keys whose values differ between run.json's config and the rerun's, except
    :data:`ferjax.run.HARMLESS_KEYS`, options added since the run started that keep their default,
    other components' options, and a selected component's options when the selection itself
    differs ("model" says it all)."""
    defaults = run.config_dict(get_config())
    differences = run.config_differences(_in_use(recorded), _in_use(now), defaults)
    replaced = {group for group, key in _SELECTED.items() if key in differences}
    return [key for key in differences if key.split(".")[0] not in replaced]


def _in_use(config: dict) -> dict:
    """A config dict without the hyperparameters of components the run does not use (another
    dataset's options, or one added to the registry since, cannot change this run's result)."""
    return config | {
        group: {name: options for name, options in config.get(group, {}).items() if name == config.get(key)}
        for group, key in _SELECTED.items()
    }


def _finished(report: dict, total_steps: int) -> bool:
    return report.get("steps") == total_steps and not report.get("stopped_early", True)


def _is_disk_full(error: BaseException) -> bool:
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


def _kept(workdir: Path) -> str:
    """What a failed run leaves to resume from, for its one-line error."""
    steps = _checkpoint_steps(workdir)
    return f"the checkpoint at step {steps[-1]} is kept" if steps else "no checkpoint was written yet"


def _checkpoint_steps(workdir: Path) -> list[int]:
    """The steps in ``checkpoints/latest`` (orbax lists only complete ones; so does this)."""
    return sorted(int(p.name) for p in (workdir / "checkpoints" / "latest").glob("*") if p.name.isdigit())
