"""One process of a multi-host training run on loopback, for tests/test_multihost.py (SPEC §2).

    python -m tests.multihost_worker --workdir=W --log=DIR --devices=4 \
        --num_processes=2 --process_id=I --port=P [--slow_when=PATH]

Gives this process ``--devices`` CPU devices, calls ``jax.distributed.initialize`` with a
coordinator on 127.0.0.1:P (not with one process), trains :func:`tiny_config` in W and writes
DIR/process<I>.json: the rows of each split this process read (in order) and the files it wrote in W.
``--slow_when``: every read sleeps once PATH exists (holds a run still while a test kills it).
SIGUSR1 prints every thread's Python stack to the output (the test asks for it when a launch hangs).
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "recorded_demo"
PORT_TAKEN = 75  # exit status of process 0 when the coordinator's port is in use
READS: dict[str, list[int]] = {}  # split -> rows read by this process, in order
SLOW_WHEN: list[Path] = []


class RecordedSource:
    """A split source that notes every row read (and sleeps per read once SLOW_WHEN exists)."""

    def __init__(self, split: str, source):
        self.split, self.source, self.labels = split, source, source.labels
        READS.setdefault(split, [])

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        READS[self.split].append(int(index))
        if SLOW_WHEN and SLOW_WHEN[0].exists():
            time.sleep(0.5)
        return self.source[index]


def register() -> None:
    """The ``recorded_demo`` dataset: the demo set (``config.datasets.demo``) read through :class:`RecordedSource`."""
    from ferjax import data
    from ferjax.datasets import demo

    if NAME in data.DATASETS:
        return

    @data.DATASETS.register(NAME)
    def _load(config):
        splits = demo.load(config)
        return dataclasses.replace(
            splits, **{s: RecordedSource(s, getattr(splits, s)) for s in ("train", "validation", "test")}
        )


def tiny_config():
    """configs/demo.py scaled down: 64/40/44 faces at 16×16, a small CNN, 2 epochs of 4 steps.

    SGD, not the demo's Adam: the cross-process sum (gloo) adds in another order than one
    process does, and Adam turns that rounding noise (1e-7) in near-zero gradients into
    parameter differences near 1e-5 within a few steps.
    """
    from ferjax import config

    register()
    c = config.load(REPO / "configs" / "demo.py")
    c.dataset = NAME
    c.datasets.demo.train_size, c.datasets.demo.validation_size, c.datasets.demo.test_size = 64, 40, 44
    c.image_size = 16
    c.models.baseline_cnn.conv_features = (8, 16)
    c.models.baseline_cnn.dense_features = (32, 16)
    c.models.baseline_cnn.dropout_rates = (0.1, 0.2)
    c.batch_size = c.eval_batch_size = 16
    c.num_epochs = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 3  # 3 (mid-epoch), 4 (epoch end), 6, 8
    c.optimizer, c.learning_rate = "sgd", 0.005
    c.progress_bar = False
    return c


def _record_writes(workdir: Path, written: set[str]) -> None:
    """Note every path under ``workdir`` this process opens for writing, creates, renames to or removes."""
    root = str(workdir.resolve())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def note(path) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(path))
            if path == root or path.startswith(root + os.sep):
                written.add(os.path.relpath(path, root))

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (mode is None and flags & write_flags):
                note(path)
        elif event in ("os.rename", "os.link", "os.symlink"):
            note(args[1])
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            note(args[0])

    sys.addaudithook(hook)


def _port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now (the coordinator binds it a moment later)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("workdir", "log", "slow_when"):
        parser.add_argument(f"--{name}", default=None)
    for name in ("devices", "num_processes", "process_id", "port"):
        parser.add_argument(f"--{name}", type=int, default=0)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.slow_when:
        SLOW_WHEN.append(Path(args.slow_when))
    workdir = Path(args.workdir)
    written: set[str] = set()
    _record_writes(workdir, written)

    import jax

    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.num_processes > 1:
        address = f"127.0.0.1:{args.port}"
        if args.process_id == 0 and not _port_free(args.port):
            sys.exit(PORT_TAKEN)  # the test picks another port and starts again
        jax.distributed.initialize(
            coordinator_address=address, num_processes=args.num_processes, process_id=args.process_id,
            coordinator_bind_address=address, initialization_timeout=60,
        )
    from ferjax.train import train_and_evaluate

    report = train_and_evaluate(tiny_config(), workdir)
    log = {
        "process_index": jax.process_index(), "process_count": jax.process_count(), "devices": jax.device_count(),
        "reads": READS, "written": sorted(written),
        "accuracy": {split: m["accuracy"] for split, m in report["splits"].items()},
    }
    (Path(args.log) / f"process{args.process_id}.json").write_text(json.dumps(log))


if __name__ == "__main__":
    main()
