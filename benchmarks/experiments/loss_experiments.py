"""Loss experiments (issue 3), one command each, run sequentially on whatever devices JAX sees.

Loss comparison (same config and budget for every loss; issue 3 item 6):
    python benchmarks/experiments/loss_experiments.py --config=configs/demo.py --workdir=runs/losses_demo [--seeds=0,1,2]
The thesis' loss comparison on CK+ (issue 13 item 5): every loss on every fold × seed, with each
loss's test accuracy paired against MAM-SoftMax's on the same (seed, fold):
    python benchmarks/experiments/loss_experiments.py --config=configs/ckplus.py \
        --losses=mam_softmax,softmax,amsoftmax,arcface,sce,dams --folds=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2 \
        --reference=mam_softmax --workdir=runs/losses_ckplus
That is ≈ 15 h on 2 CPU cores at the CK+ recipe's 80 epochs. The run in benchmarks/RESULTS.md
("The thesis' loss comparison on CK+") used 10 epochs of Adam 1e-3 (≈ 35 s per fold, ≈ 1.75 h):
add ``--config.num_epochs=10 --config.optimizer=adam --config.weight_decay=0
--config.schedule.name=constant --config.schedule.warmup_epochs=0
--config.losses.softmax.label_smoothing=0 --config.augment.crop_padding=0``.
Seed 002 Table 2 grid for AM-Softmax (s × m; every other setting from the config):
    python benchmarks/experiments/loss_experiments.py --mode=grid --config=configs/ckplus.py:0 \
        --config.num_epochs=5 --workdir=runs/amsoftmax_grid

Config overrides (``--config.<key>=<value>``) apply to every run. The runs are one
:func:`ferjax.experiments.sweep.sweep` in ``<workdir>/<run>[/seed<s>]`` (finished runs are read
back, unfinished ones resume); the tables (validation and test accuracy, mean ± std (min) over
seeds × folds; with ``--reference``, the differences paired by (seed, fold); with several seeds and
folds, each seed's mean over the folds, whose seed-to-seed spread is the noise a difference
between losses must exceed — nothing is selected on test) go to stdout and ``<workdir>/table.md``.
"""

from __future__ import annotations

import copy
from pathlib import Path

from absl import flags

import ferjax.losses as L
from ferjax import cli
from ferjax.experiments import sweep

FLAGS = flags.FLAGS


def define_flags() -> None:
    from ferjax import main  # noqa: F401  (--config, --workdir)

    FLAGS.set_default("workdir", "runs/loss_experiments")
    flags.DEFINE_enum("mode", "compare", ["compare", "grid"], "Compare losses, or the AM-Softmax s×m grid.")
    flags.DEFINE_list("losses", list(L.LOSSES.names()), "Losses to compare (mode=compare).")
    flags.DEFINE_list("folds", None, "Cross-validation folds to run each loss on (e.g. 0,…,9 for CK+; each in fold<f>/).")
    flags.DEFINE_string("reference", None, "mode=compare: also tabulate each loss's test accuracy minus this loss's, "
                                           "paired by seed and fold.")
    flags.DEFINE_list("grid_s", ["20", "25", "30", "35", "40"], "AM-Softmax scales (mode=grid).")
    flags.DEFINE_list("grid_m", ["0.32", "0.36", "0.40", "0.44", "0.48"], "AM-Softmax margins (mode=grid).")
    sweep.define_seeds_flag()


def compare(base, root: Path, losses: list[str], seeds: list[int] | None, folds: list[int] | None = None,
            reference: str | None = None) -> str:
    configs = {}
    for name in losses:
        configs[name] = copy.deepcopy(base)
        configs[name].loss = name
    trials = sweep.sweep(configs, root, seeds=seeds, folds=folds)
    text = sweep.table(trials, label="loss")
    if reference:
        text += "\nPaired by (seed, fold):\n\n" + sweep.paired(trials, reference)
    if seeds and len(seeds) > 1 and folds:
        text += "\nPer seed (each seed's mean over the folds):\n\n" + sweep.per_seed(trials, reference)
    return text


def grid(base, root: Path, scales: list[float], margins: list[float], seeds: list[int] | None,
         folds: list[int] | None = None) -> str:
    configs = {}
    for s in scales:
        for m in margins:
            config = copy.deepcopy(base)
            config.loss = "amsoftmax"
            config.losses.amsoftmax.s, config.losses.amsoftmax.m = s, m
            configs[f"s{s:g}_m{m:.2f}"] = config
    trials = sweep.sweep(configs, root, seeds=seeds, folds=folds)
    stats = {split: sweep.summarize(trials, split) for split in ("validation", "test")}
    cell = lambda name: " / ".join(_mean(stats[split][name]) for split in ("validation", "test"))  # noqa: E731
    lines = ["validation / test accuracy % (mean over seeds; NaN: every seed diverged)", "",
             "| s \\ m | " + " | ".join(f"{m:.2f}" for m in margins) + " |", "|---|" + "---|" * len(margins)]
    for s in scales:
        lines.append(f"| {s:g} | " + " | ".join(cell(f"s{s:g}_m{m:.2f}") for m in margins) + " |")
    return "\n".join(lines) + "\n\n" + sweep.table(trials, label="s, m")


def _mean(stats: sweep.Stats) -> str:
    return f"{100 * stats.mean:.2f}" if stats.count else "NaN"


def main(argv) -> None:
    cli.setup(argv)
    seeds = sweep.seeds_from_flag()
    try:
        scales, margins = [float(s) for s in FLAGS.grid_s], [float(m) for m in FLAGS.grid_m]
    except ValueError:
        cli.fail(f"--grid_s and --grid_m must be numbers, got {','.join(FLAGS.grid_s)} and {','.join(FLAGS.grid_m)}", 2)
    unknown = sorted(set(FLAGS.losses) - set(L.LOSSES.names()))
    if unknown:
        cli.fail(f"--losses: unknown {unknown}; valid: {', '.join(L.LOSSES.names())}", 2)
    try:
        folds = None if FLAGS.folds is None else [int(f) for f in FLAGS.folds]
    except ValueError:
        cli.fail(f"--folds must be integers, got {','.join(FLAGS.folds)}", 2)
    if FLAGS.reference is not None and FLAGS.reference not in FLAGS.losses:
        cli.fail(f"--reference={FLAGS.reference} is not one of --losses ({','.join(FLAGS.losses)})", 2)
    root = Path(FLAGS.workdir)
    with cli.user_errors():
        if FLAGS.mode == "compare":
            text = compare(FLAGS.config, root, FLAGS.losses, seeds, folds, FLAGS.reference)
        else:
            text = grid(FLAGS.config, root, scales, margins, seeds, folds)
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
