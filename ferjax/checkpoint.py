"""Orbax checkpoints of the train state (SPEC §2, §9): periodic, best on validation, verified.

Checkpoints are written atomically by orbax (a half-written step is never listed; stale
temporary folders are removed when a run opens its checkpoints). Each checkpoint's ``meta``
records a digest of every part of the state (:func:`digests`); a restore recomputes them,
so a damaged checkpoint (missing files, truncated or altered data) is detected instead of
training on from garbage. :meth:`Checkpoints.restore_newest` then moves the damaged step
to ``checkpoints/damaged/`` and falls back to the newest intact one, saying so in one line.
Restoring takes an abstract target whose shardings come from the *current* mesh, so a run
saved on one device count restores on another. A save that would not fit on the disk is
refused before orbax writes anything (:class:`NoSpace`), so the previous checkpoint stays
intact; :meth:`Checkpoints.wait` removes the partial folders of a write that failed anyway.
Multi-host: every process calls every method (orbax's managers save, restore and delete
collectively, process 0 writing the shared files); only process 0 moves a damaged step.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from ferjax import parallel
from ferjax.errors import CheckpointError

KINDS = ("latest", "best")
SPACE_MARGIN = 1 << 20  # bytes kept free beyond the state's size: checkpoint metadata, logs
# How long a save may stay in flight before orbax gives up on it (orbax's default: 1200 s). The
# clock is the wall's, so a stopped process (SIGSTOP from ../shared/tools/cpu-slot while a foreground
# job runs, a suspended laptop) used to fail its pending save after 20 minutes, ending the run.
ASYNC_TIMEOUT_S = 7 * 24 * 3600
_PARTIAL = "*.orbax-checkpoint-tmp*"  # orbax's name for a step (or item) still being written


class Damaged(Exception):
    """A checkpoint step that cannot be restored, or whose digests do not match."""


class NoSpace(CheckpointError):
    """The disk has no room for the next checkpoint."""


def digests(parts: dict[str, Any]) -> dict[str, str]:
    """A BLAKE2b digest of each named pytree's leaves (paths, dtypes, shapes and bytes)."""
    out = {}
    for name, tree in parts.items():
        h = hashlib.blake2b(digest_size=16)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            array = np.ascontiguousarray(_host(leaf))
            h.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
            h.update(array.tobytes())
        out[name] = h.hexdigest()
    return out


def _host(x) -> np.ndarray:
    """A replicated (or host) array's value on this host, also in a multi-process run."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x)


def _state_parts(state: Any) -> dict[str, Any]:
    parts = {"step": state.step, "params": state.params, "batch_stats": state.batch_stats, "opt_state": state.opt_state}
    if getattr(state, "ema_params", None) is not None:  # config.ema_decay > 0
        parts["ema_params"] = state.ema_params
    return parts


class Checkpoints:
    """``latest/`` keeps the last ``keep`` periodic checkpoints; ``best/`` the best on validation.

    ``read_only=True`` opens an existing run without creating, cleaning or writing anything
    (the inference loader).
    """

    def __init__(self, workdir: str | Path, keep: int = 1, read_only: bool = False):
        self.root = Path(workdir).absolute() / "checkpoints"
        self._managers = {}
        for kind in KINDS:
            best = kind == "best"
            options = ocp.CheckpointManagerOptions(
                max_to_keep=1 if best else keep,
                create=not read_only,  # read-only: nothing created, cleaned or saved (orbax's own
                cleanup_tmp_directories=not read_only,  # read_only option only logs warnings here)
                best_fn=(lambda m: m["validation_accuracy"]) if best else None,
                best_mode="max",
                async_options=ocp.AsyncOptions(timeout_secs=ASYNC_TIMEOUT_S),
            )
            self._managers[kind] = ocp.CheckpointManager(self.root / kind, options=options, item_names=("state", "meta"))

    def directory(self, kind: str = "latest") -> Path:
        return self.root / kind

    def steps(self, kind: str = "latest") -> list[int]:
        return sorted(self._managers[kind].all_steps())

    def latest_step(self) -> int | None:
        return self._managers["latest"].latest_step()

    def best_step(self) -> int | None:
        return self._managers["best"].best_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        self._check_space("latest", step, state)
        self._managers["latest"].save(step, args=self._save_args(state, meta), force=True)

    def save_best(self, step: int, state: Any, meta: dict, validation_accuracy: float) -> None:
        self._check_space("best", step, state)
        self._managers["best"].save(
            step, args=self._save_args(state, meta), metrics={"validation_accuracy": validation_accuracy}, force=True
        )

    def _check_space(self, kind: str, step: int, state: Any) -> None:
        """Raise :class:`NoSpace` unless the state fits, after the writes in flight have taken their room."""
        self.wait()
        needed = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)) + SPACE_MARGIN
        free = shutil.disk_usage(self.root).free
        if free < needed:
            raise NoSpace(
                f"cannot write checkpoint step {step} to {self.directory(kind)}: no space left on device "
                f"(needs {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free)"
            )

    @staticmethod
    def _save_args(state: Any, meta: dict) -> ocp.args.Composite:
        meta = dict(meta, digests=digests(_state_parts(state)))
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def discard_best_after(self, step: int) -> None:
        """Delete best checkpoints newer than ``step`` (a resumed run recreates them exactly)."""
        manager = self._managers["best"]
        for later in [s for s in self.steps("best") if s > step]:
            manager.delete(later)

    def restore(self, step: int, abstract_state: Any, kind: str = "latest") -> tuple[Any, dict]:
        """The whole train state at ``step``, verified against its digests; raises :class:`Damaged`."""
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        restored = self._restore(kind, step, args)
        meta = dict(restored.meta)
        _verify(meta, _state_parts(restored.state))
        return restored.state, meta

    def restore_variables(self, step: int, abstract_variables: dict, kind: str, params_from: str = "params") -> dict:
        """Only ``params`` and ``batch_stats`` (no optimizer state), verified; raises :class:`Damaged`.
        ``params_from="ema_params"``: the params are the state's average of the weights."""
        wanted = {params_from if name == "params" else name: tree for name, tree in abstract_variables.items()}
        item = ocp.args.PyTreeRestore(
            item=wanted, restore_args=ocp.checkpoint_utils.construct_restore_args(wanted), partial_restore=True
        )
        restored = self._restore(kind, step, ocp.args.Composite(state=item, meta=ocp.args.JsonRestore()))
        parts = {name: restored.state[name] for name in wanted}
        _verify(dict(restored.meta), parts)
        return {"params" if name == params_from else name: tree for name, tree in parts.items()}

    def _restore(self, kind: str, step: int, args: ocp.args.Composite):
        try:
            return self._managers[kind].restore(step, args=args)
        except Exception as error:  # noqa: BLE001 - orbax/tensorstore raise many kinds for damaged files
            raise Damaged(_first_line(error)) from None

    def restore_newest(
        self, restore: Callable[[int], Any], kind: str = "latest", say: Callable[[str], None] = parallel.say
    ) -> tuple[int, Any] | None:
        """``(step, restore(step))`` for the newest step of ``kind`` that restores intact.

        A damaged step is moved to ``checkpoints/damaged/`` (kept for inspection, never
        silently replaced) and the next older one is tried. None when there is no step;
        :class:`ferjax.errors.CheckpointError` naming the directory when none is intact.
        """
        steps = self.steps(kind)
        for step in reversed(steps):
            try:
                return step, restore(step)
            except Damaged as damage:
                moved = self.quarantine(kind, step)
                older = [s for s in steps if s < step]
                then = f"falling back to step {older[-1]}" if older else "no older checkpoint"
                say(f"checkpoint {self.directory(kind) / str(step)} is damaged ({damage}); moved to {moved}; {then}")
        if steps:
            raise CheckpointError(f"no intact checkpoint in {self.directory(kind)} (damaged steps moved to {self.root / 'damaged'})")
        return None

    def quarantine(self, kind: str, step: int) -> Path:
        """Move a damaged step out of its manager's directory, to ``checkpoints/damaged/``."""
        source = self.directory(kind) / str(step)
        stamp = multihost_utils.broadcast_one_to_all(np.int64(time.time()))  # one name on every process
        target = self.root / "damaged" / f"{kind}-{step}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(int(stamp)))}"
        if parallel.is_primary():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(target))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"ferjax quarantine {kind} {step}")
        self._managers[kind].reload()
        return target

    def wait(self) -> None:
        """Finish the writes in flight; a write that failed (a full disk) leaves no partial folder."""
        try:
            _each(lambda m: m.wait_until_finished(), self._managers.values())
        except Exception:
            for path in [p for kind in KINDS for p in self.directory(kind).glob(_PARTIAL)]:
                shutil.rmtree(path, ignore_errors=True)
            raise

    def close(self) -> None:
        _each(lambda m: m.close(), self._managers.values())


def _each(action: Callable[[Any], None], managers) -> None:
    """``action`` on every manager, even after one fails; then the first failure is raised."""
    errors = []
    for manager in managers:
        try:
            action(manager)
        except Exception as error:  # noqa: BLE001 - re-raised below, once every manager had its turn
            errors.append(error)
    if errors:
        raise errors[0]


def _verify(meta: dict, parts: dict[str, Any]) -> None:
    expected = meta.get("digests")
    if expected is None:  # written before digests existed: nothing to compare
        return
    actual = digests(parts)
    bad = [name for name in parts if expected.get(name) != actual[name]]
    if bad:
        raise Damaged(f"{', '.join(bad)} differ from the digest written with the checkpoint")


def _first_line(error: Exception) -> str:
    text = str(error).strip().split(" See full TensorStore details")[0].splitlines()  # the rest is a repr
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Shape/dtype skeleton of ``tree`` placed with ``sharding`` (the restore target)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
