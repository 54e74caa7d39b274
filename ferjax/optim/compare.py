"""Optimizer comparison in the style of seed 003 Table 6.3 (issue 4, SPEC §5).

Trains one config once per optimizer setting (the seeds' learning rates; weight decay 1e-4
as in seed 003), each in ``<workdir>/<setting>``, and prints a markdown table of the test
accuracy (of the model the trainer selects), the steps to 90% training accuracy (the
first logged ``train`` event whose accuracy, a mean since the previous log, is ≥ 0.9) and
the best logged training accuracy (augmented batches, dropout on).
A setting whose directory already holds report.json is not retrained.

Run:  python -m ferjax.optim.compare --config=configs/demo.py --workdir=runs/optim_demo \
          --config.log_every_steps=10
      FERJAX_DATA_DIR=../shared/data python -m ferjax.optim.compare \
          --config=configs/ckplus.py:0 --workdir=runs/optim_ckplus0 --config.log_every_steps=10
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from ferjax.errors import FerjaxError, TrainingDiverged

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
    """Command-line flags; defined only when run as a program (ferjax.main defines --config too)."""
    config_flags.DEFINE_config_file("config", None, "Training config file (ml_collections).", lock_config=True)
    flags.DEFINE_string("workdir", "runs/optim_compare", "Parent directory; one subdirectory per setting.")
    flags.DEFINE_list("settings", list(SETTINGS), f"Settings to run, from: {', '.join(SETTINGS)}.")
    flags.DEFINE_float("weight_decay", 1e-4, "Weight decay for every setting (seed 003: 1e-4).")
    flags.DEFINE_float("train_accuracy", 0.9, "Training-accuracy threshold for the steps-to column.")
    flags.mark_flags_as_required(["config"])


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


def table_row(name: str, config, workdir: Path, threshold: float) -> str:
    report = json.loads((workdir / "report.json").read_text())
    reached = steps_to_accuracy(workdir / "metrics.jsonl", threshold)
    best_train = max(e["accuracy"] for e in train_events(workdir / "metrics.jsonl"))
    hparams = ", ".join(f"{k}={v}" for k, v in SETTINGS[name][2].items()) or "–"
    test = report["splits"]["test"]["accuracy"]
    return (
        f"| {name} | {config.learning_rate:g} | {hparams} | {100 * test:.2f}% | "
        f"{'–' if reached is None else reached} | {100 * best_train:.1f}% | {report['steps']} | "
        f"{report['selected_model']} | {report['wall_seconds']:.0f} |"
    )


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from ferjax.train import train_and_evaluate

    unknown = sorted(set(FLAGS.settings) - set(SETTINGS))
    if unknown:
        raise app.UsageError(f"unknown settings {unknown}; valid: {', '.join(SETTINGS)}")
    rows = []
    for name in FLAGS.settings:
        config = setting_config(FLAGS.config, name, FLAGS.weight_decay)
        workdir = Path(FLAGS.workdir) / name
        if not (workdir / "report.json").exists():
            print(f"== {name}: training in {workdir}", flush=True)
            try:
                train_and_evaluate(config, workdir)
            except TrainingDiverged as error:
                rows.append(f"| {name} | {config.learning_rate:g} | diverged: {error} |")
                continue
            except FerjaxError as error:
                print(f"ferjax: error: {error}", file=sys.stderr)
                sys.exit(1)
        rows.append(table_row(name, config, workdir, FLAGS.train_accuracy))
    print(
        f"\n| setting | lr | hyperparameters | test accuracy | steps to {100 * FLAGS.train_accuracy:.0f}% "
        "train accuracy | best logged train accuracy | steps | selected model | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    define_flags()
    app.run(main)
