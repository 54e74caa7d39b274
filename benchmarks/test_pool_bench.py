"""Max-pooling speed gate: on the CPU backend the CK+ recipe's train step with ferjax's default
routing (``conv.max_pool`` as a reshape, :mod:`ferjax.models.conv`) must be faster than the same
step with XLA's ``reduce_window`` pooling and convolutions (``conv.forced("xla")``).

The trainer's own step (``benchmarks/trainstep.py``): ``configs/ckplus.py``'s baseline CNN (conv
32/64/128, each followed by 2×2 max-pooling; dense 256/128/128/64), 48×48×1, batch 32, float32.
Both steps run in interleaved rounds in one process (median of the per-round ratios auto / xla,
measured again once if it is over the limit; ``benchmarks/timing.py``). The limit, 0.85, sits
between what it measures (0.76 on a 2-core AMD EPYC, 2026-12-08) and what it measured with XLA's
pooling put back in a scratch copy (1.12, same machine): benchmarks/RESULTS.md "Max-pooling as slices".

    pytest benchmarks/test_pool_bench.py -s
"""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from benchmarks import timing, trainstep
from ferjax import config, parallel
from ferjax.models import conv

CKPLUS_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ckplus.py"
ROUNDS = 5
LIMIT = 0.85


def _ckplus_step(impl: str) -> trainstep.Stepper:
    c = config.load(CKPLUS_CONFIG)
    with conv.forced(impl):  # decides the pooling and convolutions while the step is traced
        stepper = trainstep.Stepper(c, parallel.make_mesh())
        stepper.call()
    return stepper


def test_ckplus_step_faster_with_reshape_pooling_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip(f"a CPU gate; the default backend is {jax.default_backend()}")
    auto, xla = _ckplus_step("auto"), _ckplus_step("xla")
    result, taken = timing.gated(lambda: timing.interleaved_ratio(auto.call, xla.call, ROUNDS, min_seconds=0.5), LIMIT)
    print(f"\nCK+ recipe train step (configs/ckplus.py): auto {result.best_a * 1e3:.1f} ms, XLA pooling and "
          f"convolutions {result.best_b * 1e3:.1f} ms, median ratio auto/xla {result.median:.2f}")
    assert result.median < LIMIT, "the CK+ step with ferjax's pooling is not faster than with XLA's: " + timing.describe(taken)
