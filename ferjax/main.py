"""Command line: ``python -m ferjax.main --config=configs/raf.py --workdir=runs/raf`` (or ``ferjax …``).

Overrides: ``--config.<key>=<value>`` (configs are locked: a mistyped key is an error that
lists the valid keys). User errors (missing data, bad config values, bad files) print one
line and exit non-zero, without a traceback (:mod:`ferjax.cli`).
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from ferjax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (ml_collections).", lock_config=True)
flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, logs, plots and report.json.")


def main(argv) -> None:
    cli.setup(argv)
    from ferjax.parallel import say
    from ferjax.train import train_and_evaluate

    with cli.user_errors():
        report = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    if report["splits"]:
        summary = ", ".join(f"{split} accuracy {m['accuracy']:.4f}" for split, m in report["splits"].items())
    else:
        summary = "no validation or test split, nothing evaluated"
    say(f"Done in {report['wall_seconds']} s: {summary}. Report: {FLAGS.workdir}/report.json")


def run() -> None:
    cli.run(main, required=("config",))


if __name__ == "__main__":
    run()
