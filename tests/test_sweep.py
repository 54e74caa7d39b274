"""Paired comparison of sweep runs by (seed, fold) (issue 13 item 5)."""

from pathlib import Path

import pytest

from ferjax.errors import ConfigError
from ferjax.experiments import sweep


def _trial(run, seed, fold, test):
    report = None if test is None else {"splits": {"test": {"accuracy": test}}}
    return sweep.Trial(run, seed, fold, Path("."), report, "" if report else "NaN loss")


def test_paired_differences_follow_seed_and_fold():
    # fold 1 is hard for both losses: unpaired, "b" looks like "a" ± a lot; paired, it is 2 points worse everywhere.
    accuracies = {("a", 0, 0): 0.95, ("a", 0, 1): 0.80, ("a", 1, 0): 0.97, ("a", 1, 1): 0.82,
                  ("b", 0, 0): 0.93, ("b", 0, 1): 0.78, ("b", 1, 0): 0.95, ("b", 1, 1): 0.80}
    trials = [_trial(run, seed, fold, acc) for (run, seed, fold), acc in accuracies.items()]
    table = sweep.paired(trials, reference="a")
    assert "| b | -2.00 ± 0.00 (min -2.00) | 0 / 0 / 4 | 4 | 0 |" in table
    assert "| a |" not in table  # the reference has no row of its own


def test_paired_leaves_out_diverged_pairs_and_counts_wins():
    trials = [_trial("ref", 0, f, 0.9) for f in range(3)]
    trials += [_trial("x", 0, 0, 0.95), _trial("x", 0, 1, 0.9), _trial("x", 0, 2, None)]
    table = sweep.paired(trials, reference="ref")
    assert "| x | +2.50 ± 3.54 (min +0.00) | 1 / 1 / 0 | 2 | 1 |" in table


def test_paired_needs_the_reference_in_the_sweep():
    with pytest.raises(ConfigError, match="reference run 'mam_softmax' is not in the sweep"):
        sweep.paired([_trial("softmax", 0, 0, 0.9)], reference="mam_softmax")


def test_loss_experiments_rejects_a_reference_outside_the_losses():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "benchmarks/experiments/loss_experiments.py", "--config=configs/demo.py",
         "--losses=softmax,sce", "--reference=mam_softmax", "--folds=0,1"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "--reference=mam_softmax is not one of --losses (softmax,sce)" in result.stderr


def test_per_seed_spread_is_over_seed_means_not_folds():
    # Folds differ by 20 points for both runs; seeds by 1. The per-seed table must show the 1, not the 20,
    # and "b" 2 points below "a" on every seed.
    trials = []
    for seed, shift in ((0, 0.0), (1, 0.01), (2, 0.02)):
        for fold, base in ((0, 0.95), (1, 0.75)):
            trials += [_trial("a", seed, fold, base + shift), _trial("b", seed, fold, base + shift - 0.02)]
    table = sweep.per_seed(trials, reference="a")
    assert "| a | 86.00 ± 1.00 (min 85.00) | 3 | 0 | – | – |" in table
    assert "| b | 84.00 ± 1.00 (min 83.00) | 3 | 0 | -2.00 ± 0.00 (min -2.00) | 0 / 3 |" in table


def test_per_seed_leaves_out_a_seed_with_a_diverged_fold():
    trials = [_trial("a", s, f, 0.9) for s in (0, 1) for f in (0, 1)]
    trials += [_trial("b", 0, 0, 0.92), _trial("b", 0, 1, 0.92), _trial("b", 1, 0, 0.5), _trial("b", 1, 1, None)]
    table = sweep.per_seed(trials, reference="a")
    assert "| b | 92.00 ± 0.00 (min 92.00) | 1 | 1 | +2.00 ± 0.00 (min +2.00) | 1 / 0 |" in table
    with pytest.raises(ConfigError, match="reference run 'c' is not in the sweep"):
        sweep.per_seed(trials, reference="c")
    assert "seeds above" not in sweep.per_seed(trials)  # no reference: no difference columns


def test_loss_comparison_tables_pair_by_seed_and_fold_and_give_per_seed_means(monkeypatch):
    import importlib.util

    from ferjax.config import get_config

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("loss_experiments", root / "benchmarks/experiments/loss_experiments.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    seen = {}

    def fake_sweep(configs, workdir, seeds, folds):
        seen.update(losses={name: c.loss for name, c in configs.items()}, seeds=seeds, folds=folds)
        return [_trial(name, s, f, 0.8 + 0.01 * s - 0.02 * (name == "softmax")) for name in configs for s in seeds for f in folds]

    monkeypatch.setattr(driver.sweep, "sweep", fake_sweep)
    text = driver.compare(get_config(), Path("unused"), ["mam_softmax", "softmax"], [0, 1], [0, 1], "mam_softmax")
    assert seen == {"losses": {"mam_softmax": "mam_softmax", "softmax": "softmax"}, "seeds": [0, 1], "folds": [0, 1]}
    assert "| softmax | -2.00 ± 0.00 (min -2.00) | 0 / 0 / 4 | 4 | 0 |" in text  # paired by (seed, fold)
    assert "| softmax | 78.50 ± 0.71 (min 78.00) | 2 | 0 | -2.00 ± 0.00 (min -2.00) | 0 / 2 |" in text  # per seed
    one_seed = driver.compare(get_config(), Path("unused"), ["mam_softmax", "softmax"], [0], [0, 1], "mam_softmax")
    assert "Per seed" not in one_seed  # one seed has no seed-to-seed spread to show
