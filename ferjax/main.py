"""Command line: ``python -m ferjax.main --config=configs/raf.py --workdir=runs/raf``.

Overrides: ``--config.<key>=<value>`` (configs are locked: a mistyped key is an error that
lists the valid keys). User errors (missing data, bad config values, bad files) print one
line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from typing import Iterator

from absl import app, flags, logging
from ml_collections import config_flags

from ferjax.errors import FerjaxError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (ml_collections).", lock_config=True)
flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, logs, plots and report.json.")
flags.DEFINE_bool("distributed", False, "Multi-host run: call jax.distributed.initialize() first (TPU pods, multi-node GPU).")


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _explain_override_error(argv: list[str], error: Exception) -> str:
    """Name the ``--config.<key>`` override that failed and list the valid keys at that level."""
    config_arg = _flag_value(argv, "config")
    if config_arg is None:
        return str(error)
    path, _, arg = config_arg.partition(":")
    try:
        config = runpy.run_path(path)["get_config"](*([arg] if arg else []))
    except Exception:  # noqa: BLE001 - fall back to the parser's own message
        return f"cannot load config {config_arg}: {error}"
    for flag in argv:
        if not flag.startswith("--config."):
            continue
        key = flag[len("--config."):].split("=", 1)[0]
        node = config
        for depth, part in enumerate(key.split(".")):
            if not hasattr(node, "keys") or part not in node:
                where = ".".join(key.split(".")[:depth]) or "config"
                valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(none: not a group)"
                return f"unknown config key {key!r} in {flag}; valid keys of {where}: {valid}"
            node = node[part]
    return f"bad config override: {error}"


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except flags.Error as error:
        print(f"ferjax: error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - config files/overrides raise many kinds
        print(f"ferjax: error: {_explain_override_error(argv, error)}", file=sys.stderr)
        sys.exit(2)


def setup(argv) -> None:
    """What every ferjax command does first: no stray arguments, quiet logs, multi-host init."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS["verbosity"].using_default_value:
        logging.set_verbosity(logging.WARNING)  # library INFO chatter off; --verbosity=0 restores it
    if FLAGS.distributed:
        import jax

        jax.distributed.initialize()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A ``FerjaxError`` inside the block becomes one line on stderr and exit status 1."""
    try:
        yield
    except FerjaxError as error:
        print(f"ferjax: error: {error}", file=sys.stderr)
        sys.exit(1)


def main(argv) -> None:
    setup(argv)
    from ferjax.train import train_and_evaluate

    with user_errors():
        report = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    summary = ", ".join(f"{split} accuracy {m['accuracy']:.4f}" for split, m in report["splits"].items())
    print(f"Done in {report['wall_seconds']} s: {summary}. Report: {FLAGS.workdir}/report.json")


def run() -> None:
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
