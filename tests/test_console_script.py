"""The installed ``ferjax`` command runs a config file from any directory (issue 10).

The package alone is installed (not editable, no dependencies: they come from this environment)
into a throwaway folder; the repository is on no path, so ``configs/demo.py`` must import
nothing but the package. One epoch of a tiny demo set and model, run from another working directory.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--config.datasets.demo.train_size=64",
    "--config.datasets.demo.validation_size=32",
    "--config.datasets.demo.test_size=32",
    "--config.num_epochs=1",
    "--config.batch_size=32",
    "--config.eval_batch_size=32",
    "--config.progress_bar=False",
    "--config.image_size=16",
    "--config.models.baseline_cnn.conv_features=(8,)",
    "--config.models.baseline_cnn.dense_features=(16,)",
    "--config.models.baseline_cnn.dropout_rates=(0.1,)",
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --no-deps --target`` of a copy of the package sources (the checkout stays clean)."""
    pytest.importorskip("setuptools", reason="building the package needs setuptools: pip install -e '.[test]'")
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(ROOT / "ferjax", source / "ferjax", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    target = tmp / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target


def test_ferjax_command_trains_a_config_from_another_directory(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed), JAX_PLATFORMS="cpu")
    where = subprocess.run(
        [sys.executable, "-c", "import ferjax; print(ferjax.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)  # the installed copy, not the checkout
    config, workdir = ROOT / "configs" / "demo.py", tmp_path / "run"
    result = subprocess.run(
        [str(installed / "bin" / "ferjax"), f"--config={config}", f"--workdir={workdir}", *TINY],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "report.json").is_file()
