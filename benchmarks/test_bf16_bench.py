"""bfloat16 speed gate (issue 12, items 1 and 4): where the CPU has bf16 units (AMX tiles or
AVX-512 BF16), a train step with ``config.dtype="bfloat16"`` must be faster than the same step
in float32.

The trainer's own step (``benchmarks/trainstep.py``) at 48×48×1, batch 64, for each model in
``MODELS``; the bf16 and fp32 steps run in interleaved rounds in one process (median of the
per-round ratios bf16 / fp32, measured again once if it is not below 1; ``benchmarks/timing.py``).

Only where ``amx_bf16`` or ``avx512_bf16`` is among the CPU's flags in /proc/cpuinfo: elsewhere
(older AMD EPYC and Intel) XLA has no bf16 units to use and bf16 may be slower, so the test
skips, saying so. ``FERJAX_BENCH_BF16=1`` runs it on any CPU (to check the gate itself; expect
it to fail where there are no bf16 units).

On such CPUs a bf16 model compiles with XLA's oneDNN custom calls (:mod:`ferjax.xla_options`).
Measured (jax 0.12.1; benchmarks/RESULTS.md, "oneDNN for bfloat16 on AMX" and "… on AVX-512
BF16"): on a 2-core Intel Xeon with AMX (2026-12-07) baseline CNN 0.91, ResNet-18 0.58 (before
oneDNN, 2026-12-06: 1.17–1.20 and 0.86, and the baseline CNN was an expected failure); on a
2-core AMD EPYC with ``avx512_bf16`` (2026-12-07) baseline CNN 0.91, ResNet-18 0.55.

    pytest benchmarks/test_bf16_bench.py -s
"""

from __future__ import annotations

import os

import jax
import pytest

from benchmarks import timing, trainstep
from ferjax import parallel, xla_options

BATCH = 64
ROUNDS = 5
MODELS = ["baseline_cnn", "resnet18"]
HAS_BF16_UNITS = xla_options.cpu_has_bf16_units()
FORCED = os.environ.get("FERJAX_BENCH_BF16", "") not in ("", "0")


@pytest.mark.parametrize("model_name", MODELS)
def test_bf16_step_faster_than_fp32_where_bf16_units(model_name):
    if jax.default_backend() != "cpu":
        pytest.skip(f"a CPU gate; the default backend is {jax.default_backend()}")
    if not (HAS_BF16_UNITS or FORCED):
        pytest.skip("neither amx_bf16 nor avx512_bf16 in /proc/cpuinfo flags: bf16 is only required to be faster on bf16 units "
                    "(FERJAX_BENCH_BF16=1 runs the gate anyway)")
    mesh = parallel.make_mesh()
    bf16 = trainstep.Stepper(trainstep.config(model_name, BATCH, dtype="bfloat16"), mesh)
    fp32 = trainstep.Stepper(trainstep.config(model_name, BATCH, dtype="float32"), mesh)
    result, taken = timing.gated(lambda: timing.interleaved_ratio(bf16.call, fp32.call, ROUNDS), 0.999)
    print(f"\n{model_name} train step 48x48x1 batch {BATCH}: bf16 {result.best_a:.3f} s, fp32 {result.best_b:.3f} s, "
          f"median ratio bf16/fp32 {result.median:.2f} (bf16 units: {HAS_BF16_UNITS})")
    assert result.median < 1.0, f"{model_name}: the bf16 train step is not faster than fp32: " + timing.describe(taken)
