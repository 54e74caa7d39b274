"""Orbax checkpoints of the train state (SPEC §2, §9): periodic and best-on-validation.

Checkpoints are written atomically by orbax (a half-written step is never listed). Restoring
takes an abstract target whose shardings come from the *current* mesh, so a run saved on
one device count restores on another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """``latest/`` keeps the last ``keep`` periodic checkpoints; ``best/`` the best on validation."""

    def __init__(self, workdir: str | Path, keep: int):
        workdir = Path(workdir).absolute()
        self._latest = ocp.CheckpointManager(
            workdir / "checkpoints" / "latest",
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
            item_names=("state", "meta"),
        )
        self._best = ocp.CheckpointManager(
            workdir / "checkpoints" / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, best_fn=lambda m: m["validation_accuracy"], best_mode="max"
            ),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        return self._best.best_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._latest.save(step, args=args, force=True)

    def save_best(self, step: int, state: Any, meta: dict, validation_accuracy: float) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._best.save(step, args=args, metrics={"validation_accuracy": validation_accuracy}, force=True)

    def restore(self, step: int, abstract_state: Any, best: bool = False) -> tuple[Any, dict]:
        manager = self._best if best else self._latest
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored.state, dict(restored.meta)

    def restore_arrays(self, step: int | None = None, best: bool = False) -> dict:
        """The saved state as a plain tree of host arrays (no target needed), e.g. for inference."""
        manager = self._best if best else self._latest
        step = step if step is not None else (manager.best_step() if best else manager.latest_step())
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {manager.directory}")
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        return restored.state

    def wait(self) -> None:
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        self._best.close()


def abstract_like(state: Any, sharding: jax.sharding.Sharding) -> Any:
    """Shape/dtype skeleton of ``state`` placed with ``sharding`` (the restore target)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)
