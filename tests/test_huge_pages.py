"""Huge pages for XLA's CPU buffers: when a command restarts itself with glibc.malloc.hugetlb=1."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ferjax import cli, huge_pages

ROOT = Path(__file__).resolve().parents[1]
GLIBC = ("glibc", "2.36")


@pytest.mark.parametrize(
    "environ, system, libc, mode, expected",
    [
        ({}, "Linux", GLIBC, "madvise", True),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "Linux", GLIBC, "madvise", True),
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "Linux", GLIBC, "madvise", False),  # the user's opt-out
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "Linux", GLIBC, "madvise", False),  # already restarted
        ({}, "Linux", GLIBC, "always", False),
        ({}, "Linux", GLIBC, "never", False),
        ({}, "Linux", GLIBC, None, False),
        ({}, "Linux", ("glibc", "2.34"), "madvise", False),  # the tunable is new in 2.35
        ({}, "Linux", ("", ""), "madvise", False),  # musl
        ({}, "Darwin", ("", ""), None, False),
    ],
)
def test_restart_only_where_it_changes_something(environ, system, libc, mode, expected):
    assert huge_pages.wanted(environ, system, libc, mode) is expected


def test_tunable_is_added_to_the_users_tunables():
    assert huge_pages.with_tunable({"A": "1"}) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    environ = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert huge_pages.with_tunable(environ)["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("text, mode", [("always [madvise] never\n", "madvise"), ("[always] madvise never", "always"), ("", None)])
def test_thp_mode_is_read_from_the_kernels_file(tmp_path, text, mode):
    (tmp_path / "enabled").write_text(text)
    assert huge_pages.thp_mode(tmp_path / "enabled") == mode
    assert huge_pages.thp_mode(tmp_path / "absent") is None


def test_every_command_restarts_before_parsing_flags(monkeypatch):
    calls = []
    monkeypatch.setattr(huge_pages, "restart_with_huge_pages", lambda: calls.append("restart"))
    monkeypatch.setattr(cli.app, "run", lambda main, flags_parser: calls.append("app.run"))
    cli.run(lambda argv: None)
    assert calls == ["restart", "app.run"]


def test_a_command_runs_with_the_tunable_exactly_where_wanted(tmp_path):
    """End to end: ``python -m ferjax.main`` with a config file that prints the tunables it sees."""
    config = tmp_path / "show_tunables.py"
    config.write_text(
        "import os\n\ndef get_config():\n"
        "    print('TUNABLES=' + os.environ.get('GLIBC_TUNABLES', '') + ' PID=' + str(os.getpid()), flush=True)\n"
        "    raise ValueError('stop here')\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ferjax.main", f"--config={config}"],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and "stop here" in stderr  # the config's error, as one line
    printed = [line for line in stdout.splitlines() if line.startswith("TUNABLES=")]
    assert printed, stdout
    tunables, pid = printed[0].removeprefix("TUNABLES=").split(" PID=")
    assert int(pid) == process.pid  # a restart replaces the process, it does not start another
    expected = huge_pages.wanted(environ, platform.system(), platform.libc_ver(), huge_pages.thp_mode())
    assert tunables == ("glibc.malloc.hugetlb=1" if expected else "")
