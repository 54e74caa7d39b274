"""Loss experiments (issue 3), one command each, run sequentially on whatever devices JAX sees.

Loss comparison (same config and budget for every loss; issue 3 item 6):
    python benchmarks/experiments/loss_experiments.py --config=configs/demo.py --workdir=runs/losses_demo
Seed 002 Table 2 grid for AM-Softmax (s × m; every other setting from the config):
    python benchmarks/experiments/loss_experiments.py --mode=grid --config=configs/ckplus.py:0 \
        --config.num_epochs=5 --workdir=runs/amsoftmax_grid

Config overrides (``--config.<key>=<value>``) apply to every run. Each run trains and evaluates
with ``ferjax.train.train_and_evaluate`` in ``<workdir>/<run>``; the table (validation and
test accuracy — nothing is selected on test) goes to stdout and ``<workdir>/table.md``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

import ferjax.losses as L
from ferjax.errors import TrainingDiverged

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Base training config.", lock_config=True)
flags.DEFINE_string("workdir", "runs/loss_experiments", "Parent directory of the runs.")
flags.DEFINE_enum("mode", "compare", ["compare", "grid"], "Compare losses, or the AM-Softmax s×m grid.")
flags.DEFINE_list("losses", [n for n in L.LOSSES.names()], "Losses to compare (mode=compare).")
flags.DEFINE_list("grid_s", ["20", "25", "30", "35", "40"], "AM-Softmax scales (mode=grid).")
flags.DEFINE_list("grid_m", ["0.32", "0.36", "0.40", "0.44", "0.48"], "AM-Softmax margins (mode=grid).")


def _train(config, workdir: Path) -> dict:
    from ferjax.train import train_and_evaluate

    try:
        report = train_and_evaluate(config, workdir)
    except TrainingDiverged as error:
        return {"diverged": str(error)}
    return {split: m["accuracy"] for split, m in report["splits"].items()} | {"seconds": report["wall_seconds"]}


def _fmt(result: dict, split: str) -> str:
    if "diverged" in result:
        return "NaN"
    value = result.get(split, math.nan)
    return f"{100 * value:.2f}"


def _compare(base, root: Path) -> list[str]:
    lines = ["| loss | validation acc % | test acc % | wall s |", "|---|---|---|---|"]
    for name in FLAGS.losses:
        config = copy.deepcopy(base)
        config.loss = name
        result = _train(config, root / name)
        lines.append(f"| {name} | {_fmt(result, 'validation')} | {_fmt(result, 'test')} | {result.get('seconds', '–')} |")
        print(lines[-1], flush=True)
    return lines


def _grid(base, root: Path) -> list[str]:
    margins = [float(m) for m in FLAGS.grid_m]
    header = "| s \\ m | " + " | ".join(f"{m:.2f}" for m in margins) + " |"
    lines = ["validation / test accuracy %", "", header, "|---|" + "---|" * len(margins)]
    for s in (float(s) for s in FLAGS.grid_s):
        cells = []
        for m in margins:
            config = copy.deepcopy(base)
            config.loss = "amsoftmax"
            config.losses.amsoftmax.s, config.losses.amsoftmax.m = s, m
            result = _train(config, root / f"s{s:g}_m{m:.2f}")
            cells.append(f"{_fmt(result, 'validation')} / {_fmt(result, 'test')}")
            print(f"s={s:g} m={m:.2f}: {cells[-1]}", flush=True)
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    return lines


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    root = Path(FLAGS.workdir)
    root.mkdir(parents=True, exist_ok=True)
    lines = (_compare if FLAGS.mode == "compare" else _grid)(FLAGS.config, root)
    table = "\n".join(lines)
    (root / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
