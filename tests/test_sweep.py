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
