"""Seed 002's new-classes experiment end to end on the toy set (issue 11)."""

import json

import pytest

from ferjax.errors import ConfigError
from ferjax.experiments import new_classes
from tests import toy_data
from tests.test_train import toy_config


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


def test_study_trains_without_each_class_and_reports_every_figure(tmp_path):
    results = new_classes.run_study(toy_config(num_epochs=3), tmp_path, held_out=["c5", "c6"], shots=(1, 5), draws=2)
    assert results["protocol"]["loss"] == "lmcl"  # the toy config's softmax has no class centres
    assert [s["held_out"] for s in results["held_out"]] == ["c5", "c6"]
    for study in results["held_out"]:
        assert (tmp_path / f"without_{study['held_out']}" / "report.json").exists()
        assert study["test_images_held_out"] > 0 and len(study["curve"]["known_accepted"]) == len(new_classes.THRESHOLDS)
        curve = study["curve"]["known_accepted"]
        assert curve[0] == 1.0 and all(a >= b for a, b in zip(curve, curve[1:]))  # accepting fewer as t rises
        for n in ("1", "5"):
            figures = study["shots"][n]
            assert len(figures["new_accuracy"]) == 2 and all(0.0 <= v <= 1.0 for v in figures["probe_new_accuracy"])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["held_out"][1]["shots"]["5"] == results["held_out"][1]["shots"]["5"]
    assert "| 5 |" in (tmp_path / "results.md").read_text() and (tmp_path / "new_classes.png").stat().st_size > 10_000
    again = new_classes.run_study(toy_config(num_epochs=3), tmp_path, held_out=["c5"], shots=(1,), draws=2)
    assert again["held_out"][0]["shots"]["1"] == results["held_out"][0]["shots"]["1"]  # reused run, same draws


def test_unknown_held_out_class_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not a class"):
        new_classes.run_study(toy_config(), tmp_path, held_out=["nope"])


def test_seeds_train_one_run_per_class_and_seed_and_report_the_spread_over_seeds(tmp_path):
    results = new_classes.run_study(toy_config(num_epochs=2), tmp_path, held_out=["c6"], shots=(1, 5), draws=2, seeds=[0, 1])
    assert [(s["held_out"], s["training_seed"]) for s in results["held_out"]] == [("c6", 0), ("c6", 1)]
    for seed in (0, 1):
        report = json.loads((tmp_path / "without_c6" / f"seed{seed}" / "report.json").read_text())
        assert report["config"]["seed"] == seed
    assert results["protocol"]["training_seeds"] == [0, 1]
    (n, per_seed), _ = new_classes.seed_rows(results)
    assert n == 1 and per_seed["new_accuracy"] == [sum(s["shots"]["1"]["new_accuracy"]) / 2 for s in results["held_out"]]
    (_, per_class), _ = new_classes.summary_rows(results)  # one class: its mean over seeds × draws
    assert per_class["new_accuracy"] == pytest.approx([sum(per_seed["new_accuracy"]) / 2])
    text = (tmp_path / "results.md").read_text()
    assert "## Across training seeds" in text and "| c6 | 1 |" in text
