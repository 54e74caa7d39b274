"""k-fold cross-validation in one command (SPEC §3: subject-independent CK+ folds).

    python -m ferjax.crossval --config=configs/ckplus.py --workdir=runs/ckplus_cv [--folds=0,1,2] [--seeds=0,1,2]

Fold ``f`` trains and evaluates exactly as ``python -m ferjax.main`` would with
``config.datasets.<dataset>.fold = f``, in ``<workdir>/fold<f>`` (with ``--seeds``:
``<workdir>/seed<s>/fold<f>``, ``config.seed = s``). The loop is :func:`ferjax.experiments.sweep.sweep`:
a finished fold is not run again (its run.json must match the config), an interrupted one resumes
from its checkpoints, so rerunning the command finishes a partial cross-validation. At the end
``<workdir>/summary.json`` and ``summary.md`` hold each fold's validation and test accuracy and their
mean ± sample standard deviation and minimum over the folds (× seeds) run (the CK+ literature
reports the mean over all 10 folds).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from ferjax import cli
from ferjax.experiments import sweep

FLAGS = flags.FLAGS
SPLITS = ("validation", "test")


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define ``--workdir`` their own way)."""
    from ferjax import main  # noqa: F401  (--config, --workdir)

    flags.DEFINE_list("folds", None, "Folds to run (default: every fold, 0 … num_folds − 1).")
    sweep.define_seeds_flag()


def run_folds(config, workdir: str | Path, folds: list[int] | None = None, seeds: list[int] | None = None) -> dict:
    """Train/evaluate every fold (× seed) and write the summary; returns it."""
    workdir = Path(workdir)
    if folds is None:
        folds = list(range(int(sweep.fold_options(config).num_folds)))
    trials = sweep.sweep(config, workdir, seeds=seeds, folds=folds)
    rows = []
    for t in trials:
        row = {"fold": t.fold} | ({"seed": t.seed} if seeds is not None else {})
        row |= {s: t.accuracy(s) for s in SPLITS if t.accuracy(s) is not None}
        rows.append(row | ({"diverged": t.diverged} if t.diverged else {"wall_seconds": t.report.get("wall_seconds")}))
        print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    summary = {"dataset": config.dataset, "model": config.model, "loss": config.loss, "folds": rows}
    for split in SPLITS:
        stats = sweep.summarize(trials, split)[""]
        if stats.count:
            summary[split] = {"mean": stats.mean, "std": stats.std, "min": stats.min, "folds": len(folds),
                              "seeds": len(seeds or [config.seed]), "runs": stats.count, "diverged": stats.diverged}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (workdir / "summary.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    seeded = any("seed" in r for r in summary["folds"])
    lines = ["| seed " * seeded + "| fold | validation acc % | test acc % | wall s |", "|---" * (4 + seeded) + "|"]
    for r in summary["folds"]:
        cells = [f"{100 * r[s]:.2f}" if s in r else "–" for s in SPLITS]
        wall = r.get("wall_seconds") or ("diverged" if "diverged" in r else "–")
        lines.append((f"| {r['seed']} " if seeded else "") + f"| {r['fold']} | {cells[0]} | {cells[1]} | {wall} |")
    for split in SPLITS:
        if split in summary:
            s = summary[split]
            over = f"{s['folds']} folds" if s["seeds"] == 1 else f"{s['runs']} runs ({s['seeds']} seeds × {s['folds']} folds)"
            diverged = f"; {s['diverged']} diverged" if s["diverged"] else ""
            lines.append(f"\n{split}: {100 * s['mean']:.2f} ± {100 * s['std']:.2f} % (mean ± sample std over {over}"
                         f"{diverged}), min {100 * s['min']:.2f} %")
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    cli.setup(argv)
    try:
        folds = None if FLAGS.folds is None else [int(f) for f in FLAGS.folds]
    except ValueError:
        cli.fail(f"--folds must be integers, got {','.join(FLAGS.folds)}", 2)
    seeds = sweep.seeds_from_flag()
    with cli.user_errors():
        run_folds(FLAGS.config, FLAGS.workdir, folds, seeds)
    print((Path(FLAGS.workdir) / "summary.md").read_text(), end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
