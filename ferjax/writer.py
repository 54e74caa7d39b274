"""Run logs: ``metrics.jsonl`` (one JSON object per event) and TensorBoard scalars (process 0 only)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from tensorboardX import SummaryWriter

from ferjax import parallel


class MetricWriter:
    """Appends events ``{"step", "split", **metrics}`` and keeps them in :attr:`events`.

    On resume from ``resume_step`` it drops what the interrupted run logged after that step (and
    a line a kill cut short), and every ``final_*`` event (the final report is written again at
    the end), from metrics.jsonl and, through TensorBoard's ``purge_step``, from the TensorBoard view.
    In a multi-host run only process 0 writes files; the others keep :attr:`events` alone.
    """

    def __init__(self, workdir: Path, resume_step: int = 0):
        self.path = Path(workdir) / "metrics.jsonl"
        self.events: list[dict] = []
        self._file = self._tensorboard = None
        if not parallel.is_primary():
            return
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:  # empty, or the last line cut short by a kill
                    continue
                if event["step"] <= resume_step and not event["split"].startswith("final_"):
                    self.events.append(event)
        self.path.write_text("".join(json.dumps(e) + "\n" for e in self.events))
        self._file = self.path.open("a", buffering=1)  # line-buffered: tail -f works during a run
        self._tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, split: str, metrics: dict) -> None:
        event = {"step": int(step), "split": split, **metrics}
        self.events.append(event)
        if self._file is None:
            return
        self._file.write(json.dumps(event) + "\n")
        for key, value in event.items():
            if key in ("step", "split"):
                continue
            if isinstance(value, numbers.Number):
                self._tensorboard.add_scalar(f"{split}/{key}", value, step)
            elif isinstance(value, dict):
                for name, sub in value.items():
                    if isinstance(sub, numbers.Number):
                        self._tensorboard.add_scalar(f"{split}/{key}/{name}", sub, step)

    def flush(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        self._tensorboard.flush()

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        finally:  # also when the disk is full: the TensorBoard thread and file must not outlive the run
            self._tensorboard.close()
