"""Command line: ``python -m ferjax.main --config=configs/raf.py --workdir=runs/raf``.

Overrides: ``--config.<key>=<value>``. User errors (missing data, bad config values, bad
files) print one line and exit 1.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from ferjax.errors import FerjaxError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (ml_collections).", lock_config=True)
flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, logs, plots and report.json.")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from ferjax.train import train_and_evaluate

    try:
        report = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except FerjaxError as error:
        print(f"ferjax: error: {error}", file=sys.stderr)
        sys.exit(1)
    summary = ", ".join(f"{split} accuracy {m['accuracy']:.4f}" for split, m in report["splits"].items())
    print(f"Done in {report['wall_seconds']} s: {summary}. Report: {FLAGS.workdir}/report.json")


def run() -> None:
    flags.mark_flags_as_required(["config"])
    app.run(main)


if __name__ == "__main__":
    run()
