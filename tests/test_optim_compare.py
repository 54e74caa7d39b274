"""The optimizer-comparison script's pure parts (issue 4): settings and steps to 90% accuracy."""

import json

import ml_collections

from ferjax import optim
from ferjax.optim import compare
from ferjax.optim.compare import SETTINGS, setting_config, steps_to_accuracy
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
    (row,) = compare.compare(base, tmp_path, ["adam"], 1e-4, 0.9)
    report = json.loads(report_path.read_text())
    assert report["steps"] == 2 and not report["stopped_early"]
    assert "| – (no test split; validation " in row
