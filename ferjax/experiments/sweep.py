"""One sweep for every experiment driver (issue 13 item 2): runs × seeds × folds, mean ± std tables.

:func:`sweep` trains every (run, seed, fold) with :func:`ferjax.train.train_and_evaluate` in
``<workdir>[/<run>][/seed<s>][/fold<f>]``; a level is present only when the sweep has it (a named
run; explicit seeds; explicit folds), so one config with neither is ``<workdir>`` itself. The
trainer makes the sweep resumable: a finished run returns its report without training, an
unfinished one resumes from its checkpoints, one trained with another config is a one-line
:class:`~ferjax.errors.RunError`. A run whose loss turns NaN is recorded as diverged and the
sweep goes on. :func:`summarize` gives each run's mean ± sample std and minimum accuracy over
its seeds × folds; :func:`table` writes them as markdown, :func:`paired` the per-(seed, fold)
differences to a reference run, :func:`per_seed` each seed's k-fold mean (and its difference to
the reference's). The drivers: ``ferjax.crossval``, ``ferjax.experiments.optimizers`` and
``benchmarks/experiments/loss_experiments.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from pathlib import Path
from typing import Callable, Mapping, Sequence

import ml_collections
from absl import flags

from ferjax.errors import ConfigError, TrainingDiverged


@dataclasses.dataclass(frozen=True)
class Trial:
    """One trained (or diverged) run of a sweep."""

    run: str  # the run's name; "" for a sweep of one unnamed config
    seed: int | None  # None: the config's own seed
    fold: int | None  # None: no folds
    workdir: Path
    report: dict | None  # report.json's dict; None when the run diverged
    diverged: str = ""  # the divergence message

    def accuracy(self, split: str) -> float | None:
        metrics = (self.report or {}).get("splits", {}).get(split)
        return None if metrics is None else metrics["accuracy"]


@dataclasses.dataclass(frozen=True)
class Stats:
    """Accuracy of one run over its seeds × folds: mean, sample std (0 for one value) and minimum."""

    mean: float
    std: float
    min: float
    count: int  # runs with a value
    diverged: int

    def __str__(self) -> str:
        if not self.count:
            return "–"
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} (min {100 * self.min:.2f})"


def fold_options(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The dataset's options group, which must have ``fold`` and ``num_folds`` keys."""
    options = config.datasets.get(config.dataset) if "datasets" in config else None
    if options is None or "fold" not in options or "num_folds" not in options:
        raise ConfigError(f"dataset {config.dataset!r} has no folds (config.datasets.{config.dataset}.fold); "
                          "cross-validation needs a k-fold dataset such as ckplus")
    return options


def trial_config(config: ml_collections.ConfigDict, seed: int | None, fold: int | None) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``seed`` and the dataset's ``fold`` set (None: unchanged)."""
    config = copy.deepcopy(config)
    with config.unlocked():
        if seed is not None:
            config.seed = seed
        if fold is not None:
            fold_options(config).fold = fold
    return config


def _check_folds(runs: Mapping[str, ml_collections.ConfigDict], folds: Sequence[int]) -> None:
    for config in runs.values():
        num_folds = int(fold_options(config).num_folds)
        bad = [f for f in folds if not 0 <= f < num_folds]
        if bad:
            raise ConfigError(f"--folds {bad} out of range 0..{num_folds - 1} (config.datasets.{config.dataset}.num_folds)")


def sweep(
    runs: Mapping[str, ml_collections.ConfigDict] | ml_collections.ConfigDict,
    workdir: str | Path,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
    say: Callable[[str], None] = print,
) -> list[Trial]:
    """Train (or resume, or read back) every run × seed × fold; the trials in that order.

    ``runs``: named configs, or one config (no run level in the paths). ``seeds``/``folds``:
    None leaves the config's own seed/fold and adds no ``seed<s>``/``fold<f>`` level.
    """
    from ferjax.train import train_and_evaluate  # the trainer imports the whole library

    if isinstance(runs, ml_collections.ConfigDict):
        runs = {"": runs}
    if folds is not None:
        _check_folds(runs, folds)
    trials = []
    for name, config in runs.items():
        for seed in [None] if seeds is None else seeds:
            for fold in [None] if folds is None else folds:
                parts = [name] * bool(name) + [f"seed{seed}"] * (seed is not None) + [f"fold{fold}"] * (fold is not None)
                where = Path(workdir, *parts)
                say(f"== {'/'.join(parts) or where}: {where}")
                try:
                    report = train_and_evaluate(trial_config(config, seed, fold), where)
                except TrainingDiverged as error:
                    say(f"diverged: {error}")
                    trials.append(Trial(name, seed, fold, where, None, str(error)))
                    continue
                trials.append(Trial(name, seed, fold, where, report))
    return trials


def summarize(trials: Sequence[Trial], split: str) -> dict[str, Stats]:
    """Each run's accuracy on ``split`` over its seeds × folds (runs in sweep order)."""
    out = {}
    for name in dict.fromkeys(t.run for t in trials):
        mine = [t for t in trials if t.run == name]
        values = [v for v in (t.accuracy(split) for t in mine) if v is not None]
        diverged = sum(t.report is None for t in mine)
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            out[name] = Stats(statistics.fmean(values), spread, min(values), len(values), diverged)
        else:
            out[name] = Stats(float("nan"), float("nan"), float("nan"), 0, diverged)
    return out


def paired(trials: Sequence[Trial], reference: str, split: str = "test") -> str:
    """A markdown table of each run's accuracy minus ``reference``'s on the same (seed, fold).

    Fold-to-fold spread (e.g. 80–96% on CK+) swamps differences between methods in an unpaired
    mean ± std; pairing by (seed, fold) removes it. Per run: mean ± sample std of the
    differences, their minimum, and how many pairs the run wins / ties / loses. Pairs where
    either side diverged are left out (and counted).
    """
    base = {(t.seed, t.fold): t.accuracy(split) for t in trials if t.run == reference}
    if not base:
        raise ConfigError(f"reference run {reference!r} is not in the sweep ({', '.join(dict.fromkeys(t.run for t in trials))})")
    lines = [f"| run − {reference} | {split} acc difference, points: mean ± std (min) | wins / ties / losses | pairs | left out |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(t.run for t in trials):
        if name == reference:
            continue
        diffs, left_out = [], 0
        for t in (t for t in trials if t.run == name):
            value, ref = t.accuracy(split), base.get((t.seed, t.fold))
            if value is None or ref is None:
                left_out += 1
            else:
                diffs.append(100 * (value - ref))
        if diffs:
            record = f"{sum(d > 0 for d in diffs)} / {sum(d == 0 for d in diffs)} / {sum(d < 0 for d in diffs)}"
            lines.append(f"| {name} | {_spread(diffs, '+')} | {record} | {len(diffs)} | {left_out} |")
        else:
            lines.append(f"| {name} | – | – | 0 | {left_out} |")
    return "\n".join(lines) + "\n"


def per_seed(trials: Sequence[Trial], reference: str | None = None, split: str = "test") -> str:
    """A markdown table of each run's k-fold mean per seed: mean ± sample std over the seeds (min).

    Every method sees the same folds, so the fold-to-fold spread is not what a difference between
    methods must exceed; the seed-to-seed spread of a k-fold mean is. With ``reference``: each
    seed's mean minus the reference's on the same seed, and on how many seeds the run is above /
    below it. A seed counts only with every fold trained (a diverged fold leaves it out, counted).
    """
    means: dict[str, dict[int, float]] = {}
    left_out: dict[str, int] = {}
    for name in dict.fromkeys(t.run for t in trials):
        mine = [t for t in trials if t.run == name and t.seed is not None]
        means[name], left_out[name] = {}, 0
        for seed in dict.fromkeys(t.seed for t in mine):
            values = [t.accuracy(split) for t in mine if t.seed == seed]
            if any(v is None for v in values):
                left_out[name] += 1
            else:
                means[name][seed] = 100 * statistics.fmean(values)
    if reference is not None and reference not in means:
        raise ConfigError(f"reference run {reference!r} is not in the sweep ({', '.join(means)})")
    header = f"| run | per-seed mean {split} acc %: mean ± std (min) | seeds | seeds left out |"
    if reference:
        header += f" − {reference} per seed, points: mean ± std (min) | seeds above / below |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, by_seed in means.items():
        row = f"| {name or '–'} | {_spread(list(by_seed.values()), '')} | {len(by_seed)} | {left_out[name]} |"
        if reference:
            diffs = [by_seed[s] - means[reference][s] for s in by_seed if s in means[reference]]
            record = f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}" if diffs else "–"
            row += " – | – |" if name == reference else f" {_spread(diffs, '+')} | {record} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _spread(values: list[float], sign: str) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{sign}.2f} ± {spread:.2f} (min {min(values):{sign}.2f})"


def table(trials: Sequence[Trial], splits: Sequence[str] = ("validation", "test"), label: str = "run") -> str:
    """A markdown table: one row per run, accuracy % mean ± std (min) per split, runs, diverged."""
    stats = {split: summarize(trials, split) for split in splits}
    header = f"| {label} | " + " | ".join(f"{split} acc % mean ± std (min)" for split in splits) + " | runs | diverged |"
    lines = [header, "|---|" + "---|" * (len(splits) + 2)]
    for name in dict.fromkeys(t.run for t in trials):
        runs = sum(t.run == name for t in trials)
        diverged = stats[splits[0]][name].diverged
        lines.append(f"| {name or '–'} | " + " | ".join(str(stats[s][name]) for s in splits) + f" | {runs} | {diverged} |")
    return "\n".join(lines) + "\n"


def define_seeds_flag() -> None:
    flags.DEFINE_list("seeds", None, "Seeds to run each setting with, e.g. 0,1,2 (each in seed<s>/); "
                                     "default: the config's seed, no seed<s>/ level.")


def seeds_from_flag() -> list[int] | None:
    """``--seeds`` as integers (None when not given); a bad value is a one-line error, exit 2."""
    from ferjax import cli

    if flags.FLAGS.seeds is None:
        return None
    try:
        return [int(s) for s in flags.FLAGS.seeds]
    except ValueError:
        cli.fail(f"--seeds must be integers, got {','.join(flags.FLAGS.seeds)}", 2)
