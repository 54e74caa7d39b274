"""Data parallelism with jax.jit over a 1-D device mesh (SPEC §2).

The batch is sharded on the ``"data"`` axis, the train state is replicated; under jit,
BatchNorm statistics and batch-level loss statistics are then global-batch statistics.
Multi-host (``--distributed``): each process feeds its own rows of the global batch
(``make_array_from_process_local_data``), evaluation gathers results from all processes, and
only process 0 writes files other than checkpoints (:func:`is_primary`, :func:`say`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ferjax.errors import ConfigError

DATA_AXIS = "data"


def is_primary() -> bool:
    """Process 0: the one process that writes logs, plots, reports and console output."""
    return jax.process_index() == 0


def say(*args, **kwargs) -> None:
    """``print`` on process 0 only (multi-host: one console report, not one per process)."""
    if is_primary():
        print(*args, **kwargs)


def make_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Place a host-local batch (leading dim = per-process batch) as one global sharded array."""
    sharding = data_sharded(mesh)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, x), batch
    )


def gather(x) -> np.ndarray:
    """A global array, or this process's rows of one, as one host array in global batch order."""
    if jax.process_count() == 1:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def check_batch_divisible(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
    if batch_size % mesh.size:
        raise ConfigError(
            f"config.{what}={batch_size} must be divisible by the number of devices ({mesh.size})"
        )
