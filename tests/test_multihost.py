"""Multi-host training on loopback (SPEC §2): 2 processes × 4 CPU devices against 1 process × 8.

Each launch starts ``tests/multihost_worker.py`` twice (``jax.distributed.initialize`` with a
coordinator on 127.0.0.1 and a port from the kernel, another one if it was taken meanwhile).
Each launch compiles for itself, with no persistent compilation cache: with jax 0.12.1, a
2-process CPU launch that loads executables an earlier launch cached waits forever in its first
collective (both processes in the first train step; reproduced here and in CI). A launch that
hangs (no progress within ``LAUNCH_TIMEOUT_S``) prints both processes' Python stacks into the
failure message.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest

from ferjax import run, train
from tests import multihost_worker as worker

REPO = Path(__file__).resolve().parents[1]
LAUNCH_TIMEOUT_S = 240  # both processes of one launch, start to exit
KILL_AT_STEP = 3  # the kill test stops both processes once checkpoint 3 (mid-epoch) is on disk


class PortTaken(Exception):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(workdir: Path, log: Path, slow_when: Path | None = None) -> list[subprocess.Popen]:
    """Both processes of a 2 × 4 launch; their output goes to log/out<i>.txt."""
    log.mkdir(parents=True, exist_ok=True)
    unset = ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"JAX_PLATFORMS": "cpu"}
    port = free_port()
    processes = []
    for i in range(2):
        command = [sys.executable, "-m", "tests.multihost_worker", f"--workdir={workdir}", f"--log={log}",
                   "--devices=4", "--num_processes=2", f"--process_id={i}", f"--port={port}"]
        if slow_when is not None:
            command.append(f"--slow_when={slow_when}")
        with open(log / f"out{i}.txt", "w") as out:
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
    return processes


def output(log: Path, i: int) -> str:
    return (log / f"out{i}.txt").read_text(errors="replace")


def describe(processes: list[subprocess.Popen], log: Path, started: float) -> str:
    """Elapsed time, exit statuses and both outputs; still-running processes first dump their stacks."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGUSR1)  # tests/multihost_worker.py: faulthandler prints every thread's stack
    if running:
        time.sleep(2)
    statuses = [p.poll() for p in processes]
    return f"after {time.monotonic() - started:.0f} s, exit statuses {statuses} (None: running)\n" + "\n".join(
        f"--- process {i}:\n{output(log, i)[-3000:]}" for i in range(2)
    )


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        process.wait()


def finish(processes: list[subprocess.Popen], log: Path) -> None:
    """Wait for both processes (bounded); a port taken by someone else raises :class:`PortTaken`."""
    started = time.monotonic()
    try:
        while any(p.poll() is None for p in processes):
            if time.monotonic() > started + LAUNCH_TIMEOUT_S:
                pytest.fail(f"2-process run still going: {describe(processes, log, started)}")
            if any(p.poll() not in (None, 0) for p in processes):  # one failed: the other would wait for it
                break
            time.sleep(0.1)
    finally:
        stop(processes)
    texts = [output(log, i) for i in range(2)]
    if processes[0].returncode == worker.PORT_TAKEN or "Address already in use" in texts[0]:
        raise PortTaken
    for i, process in enumerate(processes):
        assert process.returncode == 0, f"process {i} exited with {process.returncode}:\n{texts[i][-3000:]}"


def run_two_processes(workdir: Path, log: Path) -> None:
    for _ in range(3):
        try:
            return finish(start(workdir, log), log)
        except PortTaken:
            continue
    pytest.fail("no free coordinator port in 3 tries")


def process_logs(log: Path) -> list[dict]:
    return [json.loads((log / f"process{i}.json").read_text()) for i in range(2)]


def events(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def train_losses(workdir: Path) -> np.ndarray:
    return np.asarray([e["loss"] for e in events(workdir) if e["split"] == "train"])


def params(workdir: Path) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(run.load_run(workdir, "latest").variables["params"])]


def max_param_diff(a: Path, b: Path) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(params(a), params(b), strict=True))


@pytest.fixture(scope="module")
def one_by_eight(tmp_path_factory) -> tuple[Path, dict]:
    """The reference: this (pytest) process with its 8 devices; the rows it read."""
    workdir = tmp_path_factory.mktemp("1x8")
    worker.READS.clear()
    report = train.train_and_evaluate(worker.tiny_config(), workdir)
    assert report["devices"] == 8 and jax.process_count() == 1
    return workdir, {split: list(rows) for split, rows in worker.READS.items()}


@pytest.fixture(scope="module")
def two_by_four(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("2x4")
    run_two_processes(root / "run", root / "log")
    return root / "run", root / "log"


def test_two_processes_match_one(one_by_eight, two_by_four):
    (reference, _), (workdir, log) = one_by_eight, two_by_four
    assert [p["process_count"] for p in process_logs(log)] == [2, 2]
    assert [p["devices"] for p in process_logs(log)] == [8, 8]
    loss_1x8, loss_2x4 = train_losses(reference), train_losses(workdir)
    assert len(loss_2x4) == len(loss_1x8) == 8  # log_every_steps=1: every step's loss
    loss_diff, param_diff = float(np.max(np.abs(loss_1x8 - loss_2x4))), max_param_diff(reference, workdir)
    print(f"\n1x8 vs 2x4: max |loss diff| {loss_diff:.3g} over 8 steps, max |param diff| {param_diff:.3g}")
    np.testing.assert_allclose(loss_2x4, loss_1x8, rtol=1e-5, atol=1e-5)  # as tests/test_train.py for 1 vs 8 devices
    assert param_diff <= 1e-5
    report_1x8, report_2x4 = (json.loads((w / "report.json").read_text()) for w in (reference, workdir))
    for split, size in (("validation", 40), ("test", 44)):  # every row once: 40 and 44 are not multiples of 16
        a, b = report_1x8["splits"][split], report_2x4["splits"][split]
        assert a["num_examples"] == b["num_examples"] == size
        assert a["confusion_matrix"] == b["confusion_matrix"]
        assert abs(a["loss"] - b["loss"]) <= 1e-5


def test_each_process_reads_only_its_rows(one_by_eight, two_by_four):
    (_, reads_1x8), (_, log) = one_by_eight, two_by_four
    first, second = (p["reads"] for p in process_logs(log))
    # Training: at every step, process 0 read the first 8 rows of the global batch of 16, process 1 the rest.
    steps = np.asarray(reads_1x8["train"]).reshape(8, 16)
    halves = [np.asarray(p["train"]).reshape(8, 8) for p in (first, second)]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), steps)
    # Evaluation (validation at steps 4 and 8 and at the end; test at the end): every row once each time.
    for split, size, times in (("validation", 40, 3), ("test", 44, 1)):
        assert not set(first[split]) & set(second[split]), f"{split}: a row read by both processes"
        assert Counter(first[split] + second[split]) == Counter(reads_1x8[split]) == Counter(list(range(size)) * times)


def test_only_process_zero_writes_logs_plots_and_reports(two_by_four):
    workdir, log = two_by_four
    first, second = (set(p["written"]) for p in process_logs(log))
    outputs = {"metrics.jsonl", "report.json", "training_curves.png", "confusion_test.png", "confusion_validation.png"}
    assert outputs <= first and any(path.startswith("tensorboard/") for path in first)
    assert any(path.startswith("checkpoints/") for path in second), "process 1 takes part in orbax's saves"
    stray = sorted(path for path in second if path != "." and not path.startswith("checkpoints/"))
    assert not stray, f"process 1 wrote {stray}"  # "." is the writability check of the workdir
    assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))
    assert "demo test: accuracy" in output(log, 0) and "accuracy" not in output(log, 1)


def test_resume_after_killing_both_processes_is_exact(two_by_four, tmp_path):
    uninterrupted, _ = two_by_four
    workdir, log = tmp_path / "run", tmp_path / "log"
    checkpoint = workdir / "checkpoints" / "latest" / str(KILL_AT_STEP)
    for _ in range(3):
        processes = start(workdir, log / "killed", slow_when=checkpoint)  # reads slow down once it exists
        started, hung = time.monotonic(), None
        while not checkpoint.exists() and all(p.poll() is None for p in processes):
            if time.monotonic() > started + LAUNCH_TIMEOUT_S:
                hung = describe(processes, log / "killed", started)
                break
            time.sleep(0.02)
        ended = None if checkpoint.exists() or hung else describe(processes, log / "killed", started)
        for process in processes:
            process.send_signal(signal.SIGKILL)
        stop(processes)
        if processes[0].returncode == worker.PORT_TAKEN or "Address already in use" in output(log / "killed", 0):
            continue
        assert hung is None, f"no checkpoint {KILL_AT_STEP} within {LAUNCH_TIMEOUT_S} s: {hung}"
        assert ended is None, f"a process ended before checkpoint {KILL_AT_STEP}: {ended}"
        break
    assert checkpoint.exists(), "no free coordinator port in 3 tries"
    assert [p.returncode for p in processes] == [-signal.SIGKILL] * 2
    assert not (workdir / "report.json").exists()

    run_two_processes(workdir, log / "resumed")
    resumed_from = int(output(log / "resumed", 0).split("Resuming from step ")[1].split()[0])
    assert KILL_AT_STEP <= resumed_from < 8
    np.testing.assert_allclose(train_losses(workdir), train_losses(uninterrupted), rtol=0, atol=1e-6)
    diff = max_param_diff(workdir, uninterrupted)
    print(f"\nkilled at step >= {KILL_AT_STEP}, resumed from {resumed_from}: max |param diff| {diff:.3g}")
    assert diff <= 1e-6
