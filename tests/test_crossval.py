"""k-fold cross-validation command (SPEC §3): every fold trained in its own workdir, summary, resume."""

import copy
import json

import numpy as np
import pytest
from PIL import Image

from ferjax import crossval, evaluate
from ferjax.errors import ConfigError, RunError
from tests.test_train import toy_config


def _tiny_ck48(root):
    """CK+48 layout: 6 subjects × 3 classes × 2 frames of 48×48, class = brightness."""
    folder = root / "ckplus48" / "CK+48"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("anger", "happy", "surprise")):
        (folder / name).mkdir(parents=True)
        for subject in range(6):
            for frame in (1, 2):
                pixels = np.clip(60 * c + 40 + rng.normal(0, 5, (48, 48)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / name / f"S{subject:03d}_001_{frame:08d}.png")
    return root


def _config(tmp_path):
    """The trainer tests' tiny config on the synthetic CK+48 tree, 3 folds, 1 epoch."""
    return toy_config(**{
        "dataset": "ckplus", "data_dir": str(_tiny_ck48(tmp_path / "data")), "num_epochs": 1, "batch_size": 8,
        "datasets.ckplus.num_folds": 3, "datasets.ckplus.cache_dir": str(tmp_path / "cache"),
        "augment.enabled": False,
    })


def test_runs_each_fold_writes_a_summary_and_skips_finished_folds(tmp_path):
    config = _config(tmp_path)
    summary = crossval.run_folds(config, tmp_path / "cv", folds=[0, 2])
    assert [r["fold"] for r in summary["folds"]] == [0, 2]
    tests = [r["test"] for r in summary["folds"]]
    assert summary["test"]["mean"] == pytest.approx(np.mean(tests))
    assert summary["test"]["std"] == pytest.approx(np.std(tests, ddof=1))
    for fold in (0, 2):
        report = json.loads((tmp_path / "cv" / f"fold{fold}" / "report.json").read_text())
        assert report["config"]["datasets"]["ckplus"]["fold"] == fold
    assert not (tmp_path / "cv" / "fold1").exists()
    assert "mean ± sample std over 2 folds" in (tmp_path / "cv" / "summary.md").read_text()
    marker = tmp_path / "cv" / "fold0" / "report.json"
    report = json.loads(marker.read_text())
    report["splits"]["test"]["accuracy"] = 0.5
    marker.write_text(json.dumps(report))
    again = crossval.run_folds(config, tmp_path / "cv", folds=[0])  # reads fold 0's report, trains nothing
    assert again["folds"][0]["test"] == 0.5


def test_folds_out_of_range_and_datasets_without_folds_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"--folds \[3\] out of range 0\.\.2"):
        crossval.run_folds(_config(tmp_path), tmp_path / "cv", folds=[3])
    with pytest.raises(ConfigError, match="has no folds"):
        crossval.run_folds(toy_config(), tmp_path / "cv")


def test_a_fold_stopped_early_or_trained_with_another_config_is_not_trusted(tmp_path):
    config = _config(tmp_path)
    config.num_epochs, config.max_steps = 2, 1
    crossval.run_folds(config, tmp_path / "cv", folds=[0])
    report_path = tmp_path / "cv" / "fold0" / "report.json"
    assert json.loads(report_path.read_text())["stopped_early"]
    other = copy.deepcopy(config)
    other.model, other.max_steps = "resnet18", -1
    with pytest.raises(RunError, match=r"fold0 holds a run with another config \(model differ"):
        crossval.run_folds(other, tmp_path / "cv", folds=[0])
    config.max_steps = -1  # max_steps may change on a rerun: the fold resumes and finishes
    crossval.run_folds(config, tmp_path / "cv", folds=[0])
    report = json.loads(report_path.read_text())
    assert report["steps"] == report["total_steps"] > 1 and not report["stopped_early"]


def test_seeds_each_run_every_fold_and_are_pooled_in_the_summary(tmp_path):
    summary = crossval.run_folds(_config(tmp_path), tmp_path / "cv", folds=[1], seeds=[0, 5])
    assert [(r["seed"], r["fold"]) for r in summary["folds"]] == [(0, 1), (5, 1)]
    for seed in (0, 5):
        record = json.loads((tmp_path / "cv" / f"seed{seed}" / "fold1" / "run.json").read_text())
        assert (record["config"]["seed"], record["config"]["datasets"]["ckplus"]["fold"]) == (seed, 1)
    tests = [r["test"] for r in summary["folds"]]
    assert summary["test"] | {"mean": 0, "std": 0} == {"mean": 0, "std": 0, "min": min(tests), "folds": 1, "seeds": 2,
                                                        "runs": 2, "diverged": 0}
    assert summary["test"]["std"] == pytest.approx(np.std(tests, ddof=1))
    text = (tmp_path / "cv" / "summary.md").read_text()
    assert text.startswith("| seed | fold | validation acc % |") and "over 2 runs (2 seeds × 1 folds)" in text

    # Both seeds' cross-validations evaluated as an ensemble: each run keeps its own row and figure.
    out = tmp_path / "eval"
    out.mkdir()
    kwargs = dict(split="test", tta_mode="none", tta_samples=1, weights="equal", checkpoint="best")
    text = evaluate._crossval(out, [tmp_path / "cv" / "seed0", tmp_path / "cv" / "seed5"], ["fold1"], kwargs)
    assert "| seed0 | none |" in text and "| seed5 | none |" in text and "| ensemble | none |" in text
    assert "| seed0/fold1 | none |" in text and "| seed5/fold1 | none |" in text
    figures = sorted(p.name for p in out.glob("confusion_*.png"))
    assert figures == ["confusion_fold1_ensemble_none.png", "confusion_fold1_seed0_fold1_none.png",
                       "confusion_fold1_seed5_fold1_none.png"]


def test_short_names_are_the_shortest_distinct_endings():
    assert evaluate.short_names(["runs/a/fold0"]) == {"runs/a/fold0": "fold0"}
    assert evaluate.short_names(["r/seed0/fold0", "r/seed1/fold0", "r/seed0/fold0"]) == {
        "r/seed0/fold0": "seed0/fold0", "r/seed1/fold0": "seed1/fold0"}
    assert evaluate.short_names(["x/run", "y/run", "z"]) == {"x/run": "x/run", "y/run": "y/run", "z": "z"}
