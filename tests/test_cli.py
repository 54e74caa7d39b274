"""CLI: user errors are one line on stderr, non-zero exit, no traceback (SPEC §9)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, data_dir):
    env = dict(os.environ, FERJAX_DATA_DIR=str(data_dir), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "ferjax.main", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("ferjax: error:")]


@pytest.mark.parametrize(
    "config, expected",
    [
        ("configs/raf.py", "list_patition_label.txt"),
        ("configs/fer2013.py", "fer2013.csv"),
        ("configs/ckplus.py", "cohn-kanade-images"),
    ],
)
def test_missing_dataset_says_where_to_put_which_files(tmp_path, config, expected):
    result = run_cli(f"--config={config}", f"--workdir={tmp_path / 'run'}", data_dir=tmp_path / "empty")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert expected in line and str(tmp_path / "empty") in line


def test_mistyped_config_key_lists_valid_keys(tmp_path):
    result = run_cli("--config=configs/demo.py", "--config.lerning_rate=0.1", f"--workdir={tmp_path}", data_dir=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "'lerning_rate'" in line and "learning_rate" in line and "batch_size" in line


def test_mistyped_nested_key_names_its_group(tmp_path):
    result = run_cli(
        "--config=configs/demo.py", "--config.losses.softmax.smoothing=0.1", f"--workdir={tmp_path}", data_dir=tmp_path
    )
    (line,) = error_lines(result)
    assert "losses.softmax" in line and "label_smoothing" in line


def test_unknown_registry_name_lists_choices(tmp_path):
    result = run_cli("--config=configs/demo.py", "--config.loss=cosfase", f"--workdir={tmp_path}", data_dir=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "'cosfase'" in line and "softmax" in line
