"""Optimizer comparison in the style of seed 003 Table 6.3 (issue 4, SPEC §5).

Trains one config once per optimizer setting (the seeds' learning rates; weight decay 1e-4
as in seed 003) and seed, each in ``<workdir>/<setting>[/seed<s>]``
(:func:`ferjax.experiments.sweep.sweep`: finished runs are read back, unfinished ones resume),
and prints two markdown tables: one row per run with the test accuracy (of the model the trainer
selects), the steps to 90% training accuracy (the first logged ``train`` event whose accuracy, a
mean since the previous log, is ≥ 0.9) and the best logged training accuracy (augmented batches,
dropout on); then each setting's validation and test accuracy, mean ± std (min) over its seeds.
On a dataset without a test split the first table shows the validation accuracy instead, and
says so.

Run:  python -m ferjax.experiments.optimizers --config=configs/demo.py --workdir=runs/optim_demo \
          --config.log_every_steps=10 [--seeds=0,1,2]
      FERJAX_DATA_DIR=../shared/data python -m ferjax.experiments.optimizers \
          --config=configs/ckplus.py:0 --workdir=runs/optim_ckplus0 --config.log_every_steps=10
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from absl import flags

from ferjax import cli
from ferjax.experiments import sweep

# setting name -> (optimizer, learning rate, optimizer hyperparameter overrides)
SETTINGS = {
    "adadelta": ("adadelta", 1.0, {}),
    "sgd_momentum": ("sgd", 0.01, {}),
    "adam": ("adam", 1e-3, {}),
    "radam": ("radam", 1e-4, {}),
    "armin_adam_b1_0.8": ("armin_adam", 1e-3, {"b1": 0.8}),
    "armin_adam_b1_0.9": ("armin_adam", 1e-3, {"b1": 0.9}),
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define ``--workdir`` their own way)."""
    from ferjax import main  # noqa: F401  (--config, --workdir)

    FLAGS.set_default("workdir", "runs/optim_compare")
    flags.DEFINE_list("settings", list(SETTINGS), f"Settings to run, from: {', '.join(SETTINGS)}.")
    flags.DEFINE_float("weight_decay", 1e-4, "Weight decay for every setting (seed 003: 1e-4).")
    flags.DEFINE_float("train_accuracy", 0.9, "Training-accuracy threshold for the steps-to column.")
    sweep.define_seeds_flag()


def train_events(metrics_path: Path) -> list[dict]:
    """The ``train`` events of a run's metrics.jsonl, in logged order."""
    events = (json.loads(line) for line in metrics_path.read_text().splitlines())
    return [e for e in events if e.get("split") == "train"]


def steps_to_accuracy(metrics_path: Path, threshold: float) -> int | None:
    """First step of a ``train`` event in metrics.jsonl with accuracy ≥ threshold, else None."""
    for event in train_events(metrics_path):
        if event["accuracy"] >= threshold:
            return int(event["step"])
    return None


def setting_config(base, name: str, weight_decay: float):
    optimizer, learning_rate, hparams = SETTINGS[name]
    config = copy.deepcopy(base)
    config.optimizer = optimizer
    config.learning_rate = learning_rate
    config.weight_decay = weight_decay
    config.optimizers[optimizer].update(hparams)
    return config


def table_row(trial: sweep.Trial, config, threshold: float) -> str:
    """One markdown row of the per-run table (a seed column when the sweep has seeds)."""
    seed = "" if trial.seed is None else f" {trial.seed} |"
    if trial.report is None:
        return f"| {trial.run} |{seed} {config.learning_rate:g} | diverged: {trial.diverged} |"
    metrics = trial.workdir / "metrics.jsonl"
    reached = steps_to_accuracy(metrics, threshold)
    best_train = max(e["accuracy"] for e in train_events(metrics))
    hparams = ", ".join(f"{k}={v}" for k, v in SETTINGS[trial.run][2].items()) or "–"
    report = trial.report
    if trial.accuracy("test") is not None:
        accuracy = f"{100 * trial.accuracy('test'):.2f}%"
    elif trial.accuracy("validation") is not None:
        accuracy = f"– (no test split; validation {100 * trial.accuracy('validation'):.2f}%)"
    else:
        accuracy = "– (no test or validation split)"
    return (
        f"| {trial.run} |{seed} {config.learning_rate:g} | {hparams} | {accuracy} | "
        f"{'–' if reached is None else reached} | {100 * best_train:.1f}% | {report['steps']} | "
        f"{report['selected_model']} | {report['wall_seconds']:.0f} |"
    )


def compare(base, workdir: str | Path, settings: list[str], weight_decay: float, threshold: float,
            seeds: list[int] | None = None) -> tuple[list[str], list[sweep.Trial]]:
    """Train (or resume, or read back) each setting × seed; the per-run table's rows and the trials."""
    configs = {name: setting_config(base, name, weight_decay) for name in settings}
    trials = sweep.sweep(configs, workdir, seeds=seeds)
    return [table_row(t, configs[t.run], threshold) for t in trials], trials


def main(argv) -> None:
    cli.setup(argv)
    unknown = sorted(set(FLAGS.settings) - set(SETTINGS))
    if unknown:
        cli.fail(f"--settings: unknown {unknown}; valid: {', '.join(SETTINGS)}", 2)
    seeds = sweep.seeds_from_flag()
    with cli.user_errors():
        rows, trials = compare(FLAGS.config, FLAGS.workdir, FLAGS.settings, FLAGS.weight_decay, FLAGS.train_accuracy, seeds)
    seed = "" if seeds is None else " seed |"
    print(
        f"\n| setting |{seed} lr | hyperparameters | test accuracy | steps to {100 * FLAGS.train_accuracy:.0f}% "
        "train accuracy | best logged train accuracy | steps | selected model | wall s |"
    )
    print("|---" * (9 + (seeds is not None)) + "|")
    print("\n".join(rows))
    print("\n" + sweep.table(trials, label="setting"), end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
