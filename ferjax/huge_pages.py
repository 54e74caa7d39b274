"""Transparent huge pages for XLA's per-step host buffers (benchmarks/RESULTS.md, "Huge pages").

On CPU, XLA allocates each train step's temporary buffer with ``malloc`` (≈ 0.4 GB for the
FER-2013 recipe's step at batch 64). glibc serves a block that large with a fresh ``mmap`` and
unmaps it when the step frees it, so every step faults the buffer in again, 4 KiB at a time:
≈ 105,000 page faults and ≈ 40% of the step's time on a 2-core EPYC. With the glibc tunable
``glibc.malloc.hugetlb=1`` malloc asks for transparent huge pages (2 MiB) on such blocks, and
the same step ran 1.18–1.69× faster on two 2-core machines (AMD EPYC, Intel Xeon).

glibc reads its tunables once, at process start, so a ferjax command restarts itself once with
the tunable set (:func:`restart_with_huge_pages`, called by :func:`ferjax.cli.run`). It does so
only where it can help: Linux with glibc ≥ 2.35 and transparent huge pages in ``madvise`` mode
(in ``always`` mode malloc's blocks get huge pages already; in ``never`` mode they cannot).
Setting ``glibc.malloc.hugetlb`` yourself in ``GLIBC_TUNABLES`` (``=0`` to opt out) is respected.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode(path: Path = THP_MODE_FILE) -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``); None if unknown."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def wanted(environ: dict[str, str], system: str, libc: tuple[str, str], mode: str | None) -> bool:
    """Whether a restart with ``glibc.malloc.hugetlb=1`` would change anything."""
    if system != "Linux" or libc[0] != "glibc" or mode != "madvise":
        return False
    try:
        version = tuple(int(part) for part in libc[1].split(".")[:2])
    except ValueError:
        return False
    return version >= (2, 35) and TUNABLE not in environ.get("GLIBC_TUNABLES", "")


def with_tunable(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with ``glibc.malloc.hugetlb=1`` added to the tunables already there."""
    tunables = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]
    return {**environ, "GLIBC_TUNABLES": ":".join([*tunables, f"{TUNABLE}=1"])}


def restart_with_huge_pages() -> None:
    """Replace this process by the same command line with huge pages on, where :func:`wanted`.

    Call it before any work (ferjax's commands call it before parsing flags). A script read
    from standard input cannot be restarted and is left alone.
    """
    if sys.argv[:1] == ["-"] or not sys.orig_argv:
        return
    if wanted(dict(os.environ), platform.system(), platform.libc_ver(), thp_mode()):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, with_tunable(dict(os.environ)))
