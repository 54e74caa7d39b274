"""The optimizer comparison (issue 4; a sweep driver, issue 13): settings, steps to 90% accuracy, seeds."""

import json

import ml_collections
import numpy as np

from ferjax import optim
from ferjax.experiments import optimizers as compare
from ferjax.experiments import sweep
from ferjax.experiments.optimizers import SETTINGS, setting_config, steps_to_accuracy
from tests.test_train import toy_config


def test_steps_to_accuracy_reads_the_first_train_event_over_the_threshold(tmp_path):
    events = [
        {"step": 10, "split": "train", "loss": 1.0, "accuracy": 0.5},
        {"step": 20, "split": "validation", "accuracy": 0.95},
        {"step": 30, "split": "train", "loss": 0.2, "accuracy": 0.91},
        {"step": 40, "split": "train", "loss": 0.1, "accuracy": 0.97},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    assert steps_to_accuracy(path, 0.9) == 30
    assert steps_to_accuracy(path, 0.99) is None


def test_settings_use_the_seeds_learning_rates():
    base = ml_collections.ConfigDict(
        dict(optimizer="adam", learning_rate=0.5, weight_decay=0.0, optimizers=optim.OPTIMIZERS.default_config())
    )
    rates = {name: setting_config(base, name, 1e-4).learning_rate for name in SETTINGS}
    assert rates == {
        "adadelta": 1.0, "sgd_momentum": 0.01, "adam": 1e-3, "radam": 1e-4,
        "armin_adam_b1_0.8": 1e-3, "armin_adam_b1_0.9": 1e-3,
    }
    config = setting_config(base, "armin_adam_b1_0.8", 1e-4)
    assert (config.optimizer, config.optimizers.armin_adam.b1, config.weight_decay) == ("armin_adam", 0.8, 1e-4)
    assert base.optimizer == "adam" and base.optimizers.armin_adam.b1 == 0.9  # base untouched


def test_unfinished_settings_resume_and_a_missing_test_split_reports_validation(tmp_path):
    base = toy_config(**{
        "dataset": "demo", "datasets.demo.train_size": 32, "datasets.demo.validation_size": 14,
        "datasets.demo.test_size": 0, "num_epochs": 1, "max_steps": 1,
    })
    compare.compare(base, tmp_path, ["adam"], 1e-4, 0.9)
    report_path = tmp_path / "adam" / "report.json"
    assert json.loads(report_path.read_text())["stopped_early"]
    base.max_steps = -1  # the stopped setting's report.json is not reused: it resumes and finishes
    (row,), _ = compare.compare(base, tmp_path, ["adam"], 1e-4, 0.9)
    report = json.loads(report_path.read_text())
    assert report["steps"] == 2 and not report["stopped_early"]
    assert "| – (no test split; validation " in row


def test_seeds_run_in_their_own_folders_and_are_summarised(tmp_path):
    base = toy_config(**{
        "dataset": "demo", "datasets.demo.train_size": 32, "datasets.demo.validation_size": 14,
        "datasets.demo.test_size": 14, "num_epochs": 1,
    })
    rows, trials = compare.compare(base, tmp_path, ["adam"], 1e-4, 0.9, seeds=[3, 4])
    assert [(t.run, t.seed) for t in trials] == [("adam", 3), ("adam", 4)]
    for t in trials:
        assert t.workdir == tmp_path / t.run / f"seed{t.seed}"
        assert json.loads((t.workdir / "run.json").read_text())["config"]["seed"] == t.seed
    assert rows[1].startswith("| adam | 4 | 0.001 | – |")
    tests = [t.accuracy("test") for t in trials]
    table = sweep.table(trials, label="setting")
    assert f"| adam | {sweep.summarize(trials, 'validation')['adam']} | {100 * np.mean(tests):.2f} ± " in table
    assert f"(min {100 * min(tests):.2f}) | 2 | 0 |" in table
