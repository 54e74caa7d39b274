"""Issue 10, trainer and CLI: damaged and interrupted runs resume exactly, every user error is one line (SPEC §9)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from ferjax import checkpoint, evaluation, run, train
from ferjax.errors import CheckpointError, ConfigError, FerjaxError, RunError, TrainingDiverged
from tests import toy_data
from tests.test_train import events, toy_config

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_INFO = re.compile(r"^I\d{4} ")  # absl's INFO prefix, e.g. "I1203 08:27:35.94 …"


@pytest.fixture(scope="module", autouse=True)
def _toy():
    toy_data.register()


def variables_of(workdir, which="latest"):
    return run.load_run(workdir, which).variables


def assert_same_variables(workdir_a, workdir_b):
    """Bit-identical parameters and BatchNorm statistics at the newest checkpoint."""
    jax.tree.map(np.testing.assert_array_equal, variables_of(workdir_a), variables_of(workdir_b))


def copy_run(source, tmp_path):
    return Path(shutil.copytree(source, tmp_path / "run"))


def leftovers(workdir):
    return sorted(p.name for p in Path(workdir).rglob("*.orbax-checkpoint-tmp*"))


# ----------------------------------------------------------------------- in-process runs (toy)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted toy run: 2 epochs of 6 steps, checkpoints every 4 steps and each epoch."""
    workdir = tmp_path_factory.mktemp("full")
    return workdir, train.train_and_evaluate(toy_config(), workdir)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The same run stopped after step 6, a checkpoint at every step: latest/1 … latest/6, best/6."""
    workdir = tmp_path_factory.mktemp("stopped")
    train.train_and_evaluate(toy_config(max_steps=6, checkpoint_every_steps=1, keep_checkpoints=6), workdir)
    assert sorted(os.listdir(workdir / "checkpoints" / "latest")) == ["1", "2", "3", "4", "5", "6"]
    return workdir


def resume(workdir, **harmless):
    """Finish the run with the original config, changing only keys that may differ on a rerun."""
    return train.train_and_evaluate(toy_config(**harmless), workdir)


def test_crash_between_the_best_and_the_latest_save_resumes(tmp_path, capsys, full, stopped):
    workdir = copy_run(stopped, tmp_path)
    shutil.rmtree(workdir / "checkpoints" / "latest" / "6")  # best/6 written, latest/6 not: killed in between
    report = resume(workdir)
    assert "Resuming from step 5" in capsys.readouterr().out
    assert report["steps"] == 12 and report["selected_model"] == full[1]["selected_model"]
    assert_same_variables(workdir, full[0])


def _missing_metadata(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def _largest_data_file(step_dir):
    return max((step_dir / "state" / "ocdbt.process_0" / "d").iterdir(), key=lambda p: p.stat().st_size)


def _truncated_data(step_dir):
    path = _largest_data_file(step_dir)
    os.truncate(path, path.stat().st_size // 2)


def _deleted_meta(step_dir):
    shutil.rmtree(step_dir / "meta")


def _flipped_4k(step_dir):
    path = _largest_data_file(step_dir)
    data = bytearray(path.read_bytes())
    middle = max(0, len(data) // 2 - 2048)
    data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    path.write_bytes(data)


def _altered_values(step_dir):
    """Readable data that is not what was saved: the digest written with it no longer matches."""
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    meta["digests"]["params"] = "0" * 32
    path.write_text(json.dumps(meta))


DAMAGES = {6: _missing_metadata, 5: _truncated_data, 4: _deleted_meta, 3: _flipped_4k, 2: _altered_values}


def test_damaged_latest_checkpoints_fall_back_to_the_newest_intact_one(tmp_path, capsys, full, stopped):
    workdir = copy_run(stopped, tmp_path)
    for step, damage in DAMAGES.items():
        damage(workdir / "checkpoints" / "latest" / str(step))
    # Keys that may differ on a rerun (how it is logged and saved; unused components' options): same result.
    report = resume(workdir, log_every_steps=3, checkpoint_every_steps=5, **{"datasets.demo.train_size": 10})
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if " is damaged (" in line]
    assert [re.search(r"latest/(\d+) is damaged .*; falling back to step (\d+)$", n).groups() for n in notes] == [
        (str(s), str(s - 1)) for s in DAMAGES
    ], notes
    assert "params differ from the digest" in notes[-1]
    assert "Resuming from step 1" in out
    assert report["steps"] == 12
    assert_same_variables(workdir, full[0])
    kept = sorted(name.split("-")[1] for name in os.listdir(workdir / "checkpoints" / "damaged"))
    assert kept == sorted(str(s) for s in DAMAGES)  # moved aside for inspection, not deleted


def test_no_intact_checkpoint_is_one_line_naming_the_directory(tmp_path, stopped):
    workdir = copy_run(stopped, tmp_path)
    for step in range(1, 7):
        _deleted_meta(workdir / "checkpoints" / "latest" / str(step))
    with pytest.raises(CheckpointError) as error:
        resume(workdir)
    message = str(error.value)
    assert "\n" not in message and f"no intact checkpoint in {workdir}/checkpoints/latest" in message
    assert len(os.listdir(workdir / "checkpoints" / "damaged")) == 6


@pytest.mark.parametrize(
    "change, keys",
    [({"learning_rate": 0.01}, "learning_rate"), ({"model": "resnet18"}, "model"),
     ({"models.baseline_cnn.dense_features": (64, 16)}, "models.baseline_cnn.dense_features")],
)
def test_rerun_with_a_config_that_changes_the_result_is_refused(stopped, change, keys):
    before = (stopped / "metrics.jsonl").read_text()
    with pytest.raises(RunError, match=rf"another config \({re.escape(keys)} differ from {stopped}/run.json\)"):
        train.train_and_evaluate(toy_config(**change), stopped)
    assert (stopped / "metrics.jsonl").read_text() == before


def test_an_option_added_since_the_run_is_accepted_at_its_default(tmp_path, full):
    workdir = copy_run(full[0], tmp_path)
    record = json.loads((workdir / "run.json").read_text())
    del record["config"]["aux_loss_weight"]  # as if the run predates the option: the default keeps its result
    (workdir / "run.json").write_text(json.dumps(record))
    assert train.train_and_evaluate(toy_config(), workdir) == full[1]
    del record["config"]["image_size"]  # 16 in this run, not the default 48
    (workdir / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match=r"another config \(image_size differ"):
        train.train_and_evaluate(toy_config(), workdir)


def test_rerun_of_a_finished_run_returns_its_report_without_evaluating(full, monkeypatch, capsys):
    workdir, report = full
    files = {p: p.read_bytes() for p in [workdir / "metrics.jsonl", *(workdir / "tensorboard").iterdir()]}
    monkeypatch.setattr(evaluation, "score_split", lambda *a, **k: pytest.fail("evaluated again"))
    assert train.train_and_evaluate(toy_config(progress_bar=False), workdir) == report
    assert "already finished (12 steps)" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in files} == files
    finals = [e["split"] for e in events(workdir) if e["split"].startswith("final_")]
    assert finals == ["final_validation", "final_test"]


@pytest.mark.parametrize(
    "key, value",
    [("num_epochs", 0), ("num_epochs", -3), ("keep_checkpoints", 0), ("batch_size", 0), ("eval_batch_size", 0),
     ("log_every_steps", 0), ("checkpoint_every_steps", 0), ("image_size", 0), ("channels", 2)],
)
def test_bad_top_level_values_fail_before_any_work(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"config\.{key}={value}\b") as error:
        train.train_and_evaluate(toy_config(**{key: value}), tmp_path / "run")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "key, value", [("models.baseline_cnn.conv_features", ("abc",)), ("models.baseline_cnn.dropout_rates", (0.1,))]
)
def test_bad_model_hyperparameters_are_one_line_and_record_nothing(tmp_path, key, value):
    with pytest.raises(ConfigError, match=r"cannot build model 'baseline_cnn' with config\.models\.baseline_cnn") as e:
        train.train_and_evaluate(toy_config(**{key: value}), tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run.json").exists()  # the corrected config can use the same workdir


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FerjaxError, match=r"--workdir .*file exists and is not a directory"):
        train.train_and_evaluate(toy_config(), tmp_path / "file")


def test_nan_stop_names_the_checkpoint_it_keeps(tmp_path):
    config = toy_config(learning_rate=1e12, optimizer="sgd", log_every_steps=1, checkpoint_every_steps=1)
    kept = r"the last good checkpoint, step 1, is kept in .*latest"
    with pytest.raises(TrainingDiverged, match=rf"at step 2; stopping \({kept}\)$"):
        train.train_and_evaluate(config, tmp_path)
    assert os.listdir(tmp_path / "checkpoints" / "latest") == ["1"]


def _disk_full_after(monkeypatch, saves):
    """Report a full disk to every checkpoint save after the first ``saves`` ones."""
    real, calls = shutil.disk_usage, []

    def disk_usage(path):
        calls.append(path)
        usage = real(path)
        return usage._replace(free=usage.free if len(calls) <= saves else 1024)

    monkeypatch.setattr(checkpoint.shutil, "disk_usage", disk_usage)


def test_full_disk_during_training_keeps_the_previous_checkpoint(tmp_path, monkeypatch, full):
    _disk_full_after(monkeypatch, saves=1)  # latest/4 fits; best/6 does not
    with pytest.raises(FerjaxError) as error:
        train.train_and_evaluate(toy_config(), tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write checkpoint step 6 to {tmp_path}/checkpoints/best: no space left on device")
    assert message.endswith("the checkpoint at step 4 is kept")
    assert leftovers(tmp_path) == []
    monkeypatch.undo()  # space freed: the rerun resumes from step 4 and loses nothing
    train.train_and_evaluate(toy_config(), tmp_path)
    assert_same_variables(tmp_path, full[0])


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 3 MiB tmpfs (root only, where mounting is allowed)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode:
        pytest.skip("needs root and permission to mount a tmpfs")
    yield mount
    if subprocess.run(["umount", str(mount)]).returncode:
        subprocess.run(["umount", "--lazy", str(mount)])
        pytest.fail("a file on the tmpfs is still open after the run")


def _fill(mount, leave):
    """Grow ``mount/filler`` until ``leave`` bytes are free."""
    with open(mount / "filler", "ab") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(mount).free - leave))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's closed event loop
def test_real_full_disk(tiny_tmpfs, monkeypatch):
    workdir = tiny_tmpfs / "run"
    train.train_and_evaluate(toy_config(max_steps=4), workdir)
    _fill(tiny_tmpfs, leave=256 << 10)
    with pytest.raises(FerjaxError, match=r"no space left on device \(needs .*\); the checkpoint at step 4 is kept$"):
        train.train_and_evaluate(toy_config(), workdir)  # refused before orbax writes anything
    assert leftovers(workdir) == [] and run.load_run(workdir, "latest").step == 4
    _fill(tiny_tmpfs, leave=48 << 10)
    monkeypatch.setattr(checkpoint, "SPACE_MARGIN", -(1 << 40))  # no check: orbax's own write hits ENOSPC
    with pytest.raises(FerjaxError, match=rf"^cannot write to {workdir}: no space left on device; the checkpoint at step 4 "):
        train.train_and_evaluate(toy_config(), workdir)
    assert leftovers(workdir) == [] and run.load_run(workdir, "latest").step == 4


# ----------------------------------------------------------------------- the command line (subprocesses)

ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")  # a killed run's output too
DEMO = [
    "--config=configs/demo.py", "--config.datasets.demo.train_size=160", "--config.datasets.demo.validation_size=14",
    "--config.datasets.demo.test_size=14", "--config.image_size=16",
    "--config.models.baseline_cnn.conv_features=(8,16)",
    "--config.models.baseline_cnn.dense_features=(32,16)", "--config.models.baseline_cnn.dropout_rates=(0.1,0.1)",
    "--config.batch_size=8", "--config.eval_batch_size=16", "--config.num_epochs=3", "--config.log_every_steps=1",
    "--config.checkpoint_every_steps=7", "--config.progress_bar=False",
]  # 20 steps per epoch, 60 in all


def ferjax(*args, module="ferjax.main"):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )


def one_error_line(result, status):
    """The run failed with ``status`` and printed exactly one line on stderr: the error."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("ferjax: error: ")
    return line


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """An uninterrupted tiny demo run through ``python -m ferjax.main``."""
    workdir = tmp_path_factory.mktemp("demo") / "run"
    result = ferjax(*DEMO, f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    return workdir, result


def test_a_tiny_run_prints_no_library_info_line(demo_run):
    _, result = demo_run
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if LIBRARY_INFO.match(line)]
    assert len(lines) < 45, lines  # the dataset note, two classification reports and "Done"
    assert lines[-1].startswith("Done in ")


def _logged_step(workdir):
    try:
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    logged = map(json.loads, filter(None, lines[:-1]))  # the last line may be half-written
    steps = [e["step"] for e in logged if e["split"] == "train"]
    return max(steps, default=0)


def _signal_when(workdir, sig, after_step, *extra):
    """Start the demo in ``workdir``, send ``sig`` once a step after ``after_step`` is logged."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferjax.main", *DEMO, *extra, f"--workdir={workdir}"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    while _logged_step(workdir) <= after_step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_and_kill_9_resume_to_the_same_parameters(tmp_path, demo_run):
    workdir = tmp_path / "run"
    interrupted = _signal_when(workdir, signal.SIGINT, 0)
    line = one_error_line(interrupted, 130)
    step = int(re.fullmatch(r"ferjax: error: interrupted at step (\d+) \(checkpoint saved in .*\); "
                            r"resume with the same command", line).group(1))
    assert 0 < step < 60 and str(step) in os.listdir(workdir / "checkpoints" / "latest")
    # --verbosity=0 brings the library INFO lines back; this resumed run is then killed mid-training.
    killed = _signal_when(workdir, signal.SIGKILL, step + 3, "--verbosity=0")
    assert killed.returncode == -signal.SIGKILL
    assert f"Resuming from step {step}" in killed.stdout
    assert any(LIBRARY_INFO.match(line) for line in killed.stderr.splitlines())
    finished = ferjax(*DEMO, f"--workdir={workdir}")
    assert finished.returncode == 0, finished.stderr
    assert_same_variables(workdir, demo_run[0])
    steps = [e["step"] for e in events(workdir) if e["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 60


def test_sigterm_stops_after_a_step_with_a_checkpoint(tmp_path):
    """kill's signal, and the only stop of a background job (its shell ignores Ctrl-C)."""
    workdir = tmp_path / "run"
    stopped = _signal_when(workdir, signal.SIGTERM, 0)
    line = one_error_line(stopped, 130)
    step = int(re.fullmatch(r"ferjax: error: interrupted at step (\d+) \(checkpoint saved in .*\); "
                            r"resume with the same command", line).group(1))
    assert "SIGTERM: stopping after this step" in stopped.stdout
    assert 0 < step < 60 and str(step) in os.listdir(workdir / "checkpoints" / "latest")


def test_rerun_with_another_model_is_one_line(demo_run):
    line = one_error_line(ferjax(*DEMO, "--config.model=resnet18", f"--workdir={demo_run[0]}"), 1)
    assert f"{demo_run[0]} holds a run with another config (model differ" in line


def test_nan_stop_is_one_line_without_a_writer_traceback(tmp_path):
    result = ferjax(*DEMO, "--config.learning_rate=1e12", "--config.optimizer=sgd", f"--workdir={tmp_path}")
    line = one_error_line(result, 1)
    assert re.search(r"loss became (nan|inf|-inf) at step \d+; stopping \(no checkpoint was written before it\)", line)
    assert os.listdir(tmp_path / "checkpoints" / "latest") == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--config=configs/nope.py"], "config file configs/nope.py not found"),
        (["--config=configs/ckplus.py:abc"], "cannot load config configs/ckplus.py:abc: ValueError: invalid literal"),
    ],
)
def test_config_files_that_do_not_load_are_one_line(tmp_path, args, expected):
    line = one_error_line(ferjax(*args, f"--workdir={tmp_path}"), 2)
    assert expected in line


def test_optimizer_comparison_uses_the_shared_flag_parsing(tmp_path):
    args = ["--config=configs/demo.py", "--config.lerning_rate=1", f"--workdir={tmp_path}"]
    result = ferjax(*args, module="ferjax.experiments.optimizers")
    assert "'lerning_rate'" in one_error_line(result, 2)


def test_read_only_workdir_is_one_line(tmp_path):
    workdir = tmp_path / "ro"
    workdir.mkdir()
    workdir.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "ferjax.main", *DEMO, f"--workdir={workdir}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert f"--workdir {workdir} is not writable" in one_error_line(result, 1)


def test_a_save_in_flight_outlives_a_long_pause(tmp_path):
    """cpu-slot stops background runs (SIGSTOP) while a foreground job runs, and orbax times a
    pending save on the wall clock (1200 s by default): a CK+ run stopped for a 23-minute CI run
    failed its save and ended. Every checkpoint manager now waits up to a week."""
    ckpt = checkpoint.Checkpoints(tmp_path)
    for kind in checkpoint.KINDS:
        assert ckpt._managers[kind]._options.async_options.timeout_secs >= 24 * 3600, kind
