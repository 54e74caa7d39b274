"""Optimizer comparison in the style of seed 003 Table 6.3 (issue 4, SPEC §5).

Trains one config once per optimizer setting (the seeds' learning rates; weight decay 1e-4
as in seed 003), each in ``<workdir>/<setting>``, and prints a markdown table of the test
accuracy (of the model the trainer selects), the steps to 90% training accuracy (the
first logged ``train`` event whose accuracy, a mean since the previous log, is ≥ 0.9) and
the best logged training accuracy (augmented batches, dropout on).
Each setting is trained with :func:`ferjax.train.train_and_evaluate`, so a finished setting
returns its report without training again, an unfinished one resumes, and one trained with
another config is a one-line error. On a dataset without a test split the table shows the
validation accuracy instead, and says so.

Run:  python -m ferjax.optim.compare --config=configs/demo.py --workdir=runs/optim_demo \
          --config.log_every_steps=10
      FERJAX_DATA_DIR=../shared/data python -m ferjax.optim.compare \
          --config=configs/ckplus.py:0 --workdir=runs/optim_ckplus0 --config.log_every_steps=10
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from absl import flags

from ferjax import cli
from ferjax.errors import TrainingDiverged

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


def table_row(name: str, config, report: dict, workdir: Path, threshold: float) -> str:
    """One markdown row from a setting's report and its ``workdir/metrics.jsonl``."""
    reached = steps_to_accuracy(workdir / "metrics.jsonl", threshold)
    best_train = max(e["accuracy"] for e in train_events(workdir / "metrics.jsonl"))
    hparams = ", ".join(f"{k}={v}" for k, v in SETTINGS[name][2].items()) or "–"
    splits = report["splits"]
    if "test" in splits:
        accuracy = f"{100 * splits['test']['accuracy']:.2f}%"
    elif "validation" in splits:
        accuracy = f"– (no test split; validation {100 * splits['validation']['accuracy']:.2f}%)"
    else:
        accuracy = "– (no test or validation split)"
    return (
        f"| {name} | {config.learning_rate:g} | {hparams} | {accuracy} | "
        f"{'–' if reached is None else reached} | {100 * best_train:.1f}% | {report['steps']} | "
        f"{report['selected_model']} | {report['wall_seconds']:.0f} |"
    )


def compare(base, workdir: str | Path, settings: list[str], weight_decay: float, threshold: float) -> list[str]:
    """Train (or resume, or read back) each setting in ``workdir/<setting>``; the table's rows."""
    from ferjax.train import train_and_evaluate

    rows = []
    for name in settings:
        config = setting_config(base, name, weight_decay)
        setting_dir = Path(workdir) / name
        print(f"== {name}: {setting_dir}", flush=True)
        try:
            report = train_and_evaluate(config, setting_dir)
        except TrainingDiverged as error:
            rows.append(f"| {name} | {config.learning_rate:g} | diverged: {error} |")
            continue
        rows.append(table_row(name, config, report, setting_dir, threshold))
    return rows


def main(argv) -> None:
    cli.setup(argv)
    unknown = sorted(set(FLAGS.settings) - set(SETTINGS))
    if unknown:
        cli.fail(f"--settings: unknown {unknown}; valid: {', '.join(SETTINGS)}", 2)
    with cli.user_errors():
        rows = compare(FLAGS.config, FLAGS.workdir, FLAGS.settings, FLAGS.weight_decay, FLAGS.train_accuracy)
    print(
        f"\n| setting | lr | hyperparameters | test accuracy | steps to {100 * FLAGS.train_accuracy:.0f}% "
        "train accuracy | best logged train accuracy | steps | selected model | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
