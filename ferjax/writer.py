"""Run logs: ``metrics.jsonl`` (one JSON object per event) and TensorBoard scalars."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from tensorboardX import SummaryWriter


class MetricWriter:
    """Appends events ``{"step", "split", **metrics}``; on resume drops events after the restored step."""

    def __init__(self, workdir: Path, truncate_after_step: int = 0):
        self.path = Path(workdir) / "metrics.jsonl"
        if self.path.exists():
            kept = [
                line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= truncate_after_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a", buffering=1)  # line-buffered: tail -f works during a run
        self._tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, step: int, split: str, metrics: dict) -> None:
        self._file.write(json.dumps({"step": int(step), "split": split, **metrics}) + "\n")
        for key, value in metrics.items():
            if isinstance(value, numbers.Number):
                self._tensorboard.add_scalar(f"{split}/{key}", value, step)
            elif isinstance(value, dict):
                for name, sub in value.items():
                    if isinstance(sub, numbers.Number):
                        self._tensorboard.add_scalar(f"{split}/{key}/{name}", sub, step)

    def flush(self) -> None:
        self._file.flush()
        self._tensorboard.flush()

    def close(self) -> None:
        self._file.close()
        self._tensorboard.close()
