"""XLA compiler options for the jits that run a model: oneDNN for bfloat16 on CPUs with bf16 units.

On a CPU with bf16 instructions — AMX tiles (``amx_bf16`` among its flags, Intel Sapphire Rapids
and later) or AVX-512 BF16 dot products (``avx512_bf16``: AMD Zen 4 and later, Intel Cooper
Lake) — a model in ``config.dtype="bfloat16"`` compiles with XLA's oneDNN custom calls
(``xla_cpu_experimental_onednn_custom_call``), whose bf16 convolutions and matmuls run on those
units, and ``conv.py``'s ``auto`` routing then keeps XLA's own convolutions (oneDNN takes them;
the im2col path would only add copies). Measured (benchmarks/RESULTS.md, "oneDNN for bfloat16 on
AMX" and "… on AVX-512 BF16"): the FER-2013 recipe's train step 1.5× faster than in float32 on a
2-core Xeon with AMX, 1.55× on a 2-core AMD EPYC with ``avx512_bf16``. Everywhere else
(float32, GPU/TPU, CPUs with neither) there are no extra options. The options are per jit
(``jax.jit(..., compiler_options=…)``), so they never leak into other computations of the process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp

ONEDNN = "xla_cpu_experimental_onednn_custom_call"


CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(path: Path = CPUINFO) -> set[str]:
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


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of bf16 units oneDNN runs on


@functools.cache
def cpu_has_bf16_units(path: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX tiles or AVX-512 BF16 instructions (:data:`BF16_FLAGS`)."""
    return not cpu_flags(path).isdisjoint(BF16_FLAGS)


def uses_onednn(dtype) -> bool:
    """Whether computations in ``dtype`` compile with oneDNN here: bf16 on a CPU backend with bf16 units."""
    return jnp.dtype(dtype) == jnp.bfloat16 and jax.default_backend() == "cpu" and cpu_has_bf16_units()


def compiler_options(config) -> dict[str, bool]:
    """The ``compiler_options`` for a jit that runs ``config``'s model."""
    return {ONEDNN: True} if uses_onednn(config.dtype) else {}
