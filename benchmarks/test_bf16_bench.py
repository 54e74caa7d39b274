"""bfloat16 speed gate (issue 12, items 1 and 4): where the CPU has AMX tiles, a train step with
``config.dtype="bfloat16"`` must be faster than the same step in float32.

The trainer's own step (``benchmarks/trainstep.py``) at 48×48×1, batch 64, for each model in
``MODELS``; the bf16 and fp32 steps run in interleaved rounds in one process (median of the
per-round ratios bf16 / fp32, measured again once if it is not below 1; ``benchmarks/timing.py``).

Only where ``amx_bf16`` is among the CPU's flags in /proc/cpuinfo: elsewhere (AMD EPYC, older
Intel) XLA has no bf16 matrix units to use and bf16 may be slower, so the test skips, saying
so. ``FERJAX_BENCH_BF16=1`` runs it on any CPU (to check the gate itself; expect it to fail
where there is no AMX).

On such CPUs a bf16 model compiles with XLA's oneDNN custom calls (:mod:`ferjax.xla_options`).
Measured on a 2-core Intel Xeon with AMX (2026-12-07, jax 0.12.1; benchmarks/RESULTS.md, "oneDNN
for bfloat16 on AMX"): baseline CNN 0.91, ResNet-18 0.58. Before oneDNN (2026-12-06) they were
1.17–1.20 and 0.86, and the baseline CNN was an expected failure.

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
HAS_AMX = xla_options.cpu_has_amx()
FORCED = os.environ.get("FERJAX_BENCH_BF16", "") not in ("", "0")


@pytest.mark.parametrize("model_name", MODELS)
def test_bf16_step_faster_than_fp32_where_amx(model_name):
    if jax.default_backend() != "cpu":
        pytest.skip(f"a CPU gate; the default backend is {jax.default_backend()}")
    if not (HAS_AMX or FORCED):
        pytest.skip("no amx_bf16 in /proc/cpuinfo flags: bf16 is only required to be faster on AMX units "
                    "(FERJAX_BENCH_BF16=1 runs the gate anyway)")
    mesh = parallel.make_mesh()
    bf16 = trainstep.Stepper(trainstep.config(model_name, BATCH, dtype="bfloat16"), mesh)
    fp32 = trainstep.Stepper(trainstep.config(model_name, BATCH, dtype="float32"), mesh)
    result, taken = timing.gated(lambda: timing.interleaved_ratio(bf16.call, fp32.call, ROUNDS), 0.999)
    print(f"\n{model_name} train step 48x48x1 batch {BATCH}: bf16 {result.best_a:.3f} s, fp32 {result.best_b:.3f} s, "
          f"median ratio bf16/fp32 {result.median:.2f} (AMX: {HAS_AMX})")
    assert result.median < 1.0, f"{model_name}: the bf16 train step is not faster than fp32: " + timing.describe(taken)
