"""XLA compiler options for the jits that run a model: oneDNN for bfloat16 on AMX CPUs.

On a CPU with AMX tiles (``amx_bf16`` among its flags), a model in ``config.dtype="bfloat16"``
compiles with XLA's oneDNN custom calls (``xla_cpu_experimental_onednn_custom_call``), whose
bf16 convolutions and matmuls run on the tiles, and ``conv.py``'s ``auto`` routing then keeps
XLA's own convolutions (oneDNN takes them; the im2col path would only add copies). Measured on
a 2-core Xeon (benchmarks/RESULTS.md, "oneDNN for bfloat16 on AMX"): the FER-2013 recipe's
train step 1.5× faster than in float32. Everywhere else (float32, GPU/TPU, CPUs without AMX)
there are no extra options. The options are per jit (``jax.jit(..., compiler_options=…)``), so
they never leak into other computations of the process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp

ONEDNN = "xla_cpu_experimental_onednn_custom_call"


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@functools.cache
def cpu_has_amx() -> bool:
    return "amx_bf16" in cpu_flags()


def uses_onednn(dtype) -> bool:
    """Whether computations in ``dtype`` compile with oneDNN here: bf16 on a CPU backend with AMX."""
    return jnp.dtype(dtype) == jnp.bfloat16 and jax.default_backend() == "cpu" and cpu_has_amx()


def compiler_options(config) -> dict[str, bool]:
    """The ``compiler_options`` for a jit that runs ``config``'s model."""
    return {ONEDNN: True} if uses_onednn(config.dtype) else {}
