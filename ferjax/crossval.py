"""k-fold cross-validation in one command (SPEC §3: subject-independent CK+ folds).

    python -m ferjax.crossval --config=configs/ckplus.py --workdir=runs/ckplus_cv [--folds=0,1,2]

Fold ``f`` trains and evaluates exactly as ``python -m ferjax.main`` would with
``config.datasets.<dataset>.fold = f``, in ``<workdir>/fold<f>``. A finished fold is not run
again (its run.json must match the config: :func:`ferjax.train.train_and_evaluate`) and an
interrupted one resumes from its checkpoints, so rerunning the command finishes a partial
cross-validation. At the end ``<workdir>/summary.json`` and
``summary.md`` hold each fold's validation and test accuracy and their mean ± sample standard
deviation over the folds run (the CK+ literature reports the mean over all 10 folds).
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

from absl import flags

from ferjax import cli
from ferjax.errors import ConfigError

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define ``--workdir`` their own way)."""
    from ferjax import main  # noqa: F401  (--config, --workdir)

    flags.DEFINE_list("folds", None, "Folds to run (default: every fold, 0 … num_folds − 1).")


def fold_options(config):
    """The dataset's options group, which must have ``fold`` and ``num_folds`` keys."""
    options = config.datasets.get(config.dataset) if "datasets" in config else None
    if options is None or "fold" not in options or "num_folds" not in options:
        raise ConfigError(f"dataset {config.dataset!r} has no folds (config.datasets.{config.dataset}.fold); "
                          "cross-validation needs a k-fold dataset such as ckplus")
    return options


def run_folds(config, workdir: str | Path, folds: list[int] | None = None) -> dict:
    """Train/evaluate every fold in ``workdir/fold<f>`` and write the summary; returns it."""
    from ferjax.train import train_and_evaluate

    workdir = Path(workdir)
    num_folds = int(fold_options(config).num_folds)
    folds = list(range(num_folds)) if folds is None else folds
    bad = [f for f in folds if not 0 <= f < num_folds]
    if bad:
        raise ConfigError(f"--folds {bad} out of range 0..{num_folds - 1} (config.datasets.{config.dataset}.num_folds)")
    rows = []
    for fold in folds:
        fold_config = copy.deepcopy(config)
        with fold_config.unlocked():
            fold_options(fold_config).fold = fold
        # A finished fold returns its report; one trained with another config is an error.
        report = train_and_evaluate(fold_config, workdir / f"fold{fold}")
        row = {"fold": fold} | {split: m["accuracy"] for split, m in report["splits"].items()}
        rows.append(row | {"wall_seconds": report.get("wall_seconds")})
        print(f"fold {fold}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "fold"), flush=True)
    summary = {"dataset": config.dataset, "model": config.model, "loss": config.loss, "folds": rows}
    for split in ("validation", "test"):
        values = [r[split] for r in rows if split in r]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[split] = {"mean": statistics.fmean(values), "std": spread, "folds": len(values)}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (workdir / "summary.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    lines = ["| fold | validation acc % | test acc % | wall s |", "|---|---|---|---|"]
    for r in summary["folds"]:
        cells = [f"{100 * r[s]:.2f}" if s in r else "–" for s in ("validation", "test")]
        lines.append(f"| {r['fold']} | {cells[0]} | {cells[1]} | {r.get('wall_seconds') or '–'} |")
    for split in ("validation", "test"):
        if split in summary:
            s = summary[split]
            lines.append(f"\n{split}: {100 * s['mean']:.2f} ± {100 * s['std']:.2f} % (mean ± sample std over {s['folds']} folds)")
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    cli.setup(argv)
    try:
        folds = None if FLAGS.folds is None else [int(f) for f in FLAGS.folds]
    except ValueError:
        cli.fail(f"--folds must be integers, got {','.join(FLAGS.folds)}", 2)
    with cli.user_errors():
        run_folds(FLAGS.config, FLAGS.workdir, folds)
    print((Path(FLAGS.workdir) / "summary.md").read_text(), end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
