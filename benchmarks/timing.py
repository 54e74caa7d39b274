"""Timing gates that hold on a noisy, shared machine (issue 12, item 4).

A gate compares two things measured in the same process, never a time against a number: the
candidate and its reference run in alternating rounds (A B, B A, A B, …) so load from other
processes hits both alike, and the figure is the median of the per-round ratios. A load spike
only ever makes one round look slow, so a ratio over the limit is measured a second time and
the gate takes the smaller of the two medians: a real regression is slow both times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class Ratio(NamedTuple):
    """``median`` of the per-round ratios A/B; ``best_a``/``best_b``: each side's fastest round (s)."""

    median: float
    best_a: float
    best_b: float


def seconds_per_call(call: Callable[[], object], min_seconds: float) -> float:
    """Mean seconds per call over as many calls as fill ``min_seconds`` (at least one)."""
    start = time.perf_counter()
    call()
    single = time.perf_counter() - start
    number = max(1, int(min_seconds / max(single, 1e-6)))
    if number == 1:
        return single
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def interleaved_ratio(call_a, call_b, rounds: int, min_seconds: float = 0.0) -> Ratio:
    """Time ``call_a`` against ``call_b`` in ``rounds`` alternating rounds (both warmed up first)."""
    call_a(), call_b()
    a, b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(seconds_per_call(call_a, min_seconds))
            b.append(seconds_per_call(call_b, min_seconds))
        else:
            b.append(seconds_per_call(call_b, min_seconds))
            a.append(seconds_per_call(call_a, min_seconds))
    return Ratio(float(np.median(np.asarray(a) / np.asarray(b))), min(a), min(b))


def gated(measure: Callable[[], Ratio], limit: float) -> tuple[Ratio, list[Ratio]]:
    """``measure()`` once, and once more if its median ratio exceeds ``limit``; returns the
    measurement with the smaller median and every measurement taken (for the failure message)."""
    taken = [measure()]
    if taken[0].median > limit:
        taken.append(measure())
    return min(taken, key=lambda r: r.median), taken


def describe(taken: list[Ratio]) -> str:
    return "; ".join(f"median ratio {r.median:.2f} (best {1e3 * r.best_a:.2f} ms vs {1e3 * r.best_b:.2f} ms)"
                     for r in taken)


