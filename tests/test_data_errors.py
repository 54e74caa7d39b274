"""Unreadable data, unwritable or full cache, killed preparations (SPEC §9; issue 10, items 4–5).

Tests run as root here, and root ignores file permissions: the permission checks run in a
subprocess without the capabilities that bypass them (``setpriv``), or skip saying why.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tensorflow_datasets.core import file_adapters

from ferjax import data
from ferjax.errors import DataError
from tests.test_datasets_fer2013 import fer_config, make_folders, pixels, write_csv

_NO_ROOT_POWERS = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]

# Run in a subprocess: load FER-2013 for each (data_dir, cache_dir) in argv[1] (JSON) and print
# one JSON line per attempt: the error's type and message, or the split sizes.
_LOAD_EACH = textwrap.dedent(
    """
    import json, sys
    from tests.test_datasets_fer2013 import fer_config
    from ferjax import data
    for data_dir, cache_dir in json.loads(sys.argv[1]):
        try:
            splits = data.load_dataset(fer_config(data_dir, cache_dir))
            print(json.dumps({"sizes": [len(splits.train), len(splits.validation)]}))
        except Exception as err:
            print(json.dumps({"error": type(err).__name__, "message": str(err)}))
    """
)


def load_without_root_powers(attempts: list[tuple[Path, str]]) -> list[dict]:
    """Results of ``_LOAD_EACH`` in a process that file permissions apply to."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None or subprocess.run([*_NO_ROOT_POWERS, "true"]).returncode != 0:
            pytest.skip("running as root, and setpriv cannot drop the capabilities that ignore file permissions")
        prefix = _NO_ROOT_POWERS
    argv = [*prefix, sys.executable, "-c", _LOAD_EACH, json.dumps([[str(d), str(c)] for d, c in attempts])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_unreadable_data_folders_and_files_are_one_line_data_errors(tmp_path):
    make_folders(tmp_path / "a")
    (tmp_path / "a" / "fer2013" / "train").chmod(0)
    make_folders(tmp_path / "b")
    (tmp_path / "b" / "fer2013").chmod(0)
    (tmp_path / "c" / "fer2013").mkdir(parents=True)
    write_csv(tmp_path / "c" / "fer2013" / "fer2013.csv", [("3", pixels(1), "Training")])
    (tmp_path / "c" / "fer2013" / "fer2013.csv").chmod(0)
    try:
        results = load_without_root_powers([(tmp_path / name, tmp_path / "cache") for name in "abc"])
    finally:
        for path in ("a/fer2013/train", "b/fer2013", "c/fer2013/fer2013.csv"):
            (tmp_path / path).chmod(0o755)
    expected = ["a/fer2013/train", "b/fer2013/fer2013.csv", "c/fer2013/fer2013.csv"]
    assert [r.get("error") for r in results] == ["DataError"] * 3, results
    for result, path in zip(results, expected):
        assert result["message"] == f"cannot read {tmp_path / path}: Permission denied"
    assert not list((tmp_path / "cache").glob("ferjax_fer2013/*/*"))


def test_a_read_only_cache_serves_prepared_copies_and_refuses_new_ones_in_one_line(tmp_path):
    cache = tmp_path / "cache"
    make_folders(tmp_path / "ready")
    data.load_dataset(fer_config(tmp_path / "ready", cache))
    make_folders(tmp_path / "new")
    for folder, _, files in os.walk(cache):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    before = sorted(cache.rglob("*"))
    try:
        ready, new = load_without_root_powers([(tmp_path / "ready", cache), (tmp_path / "new", cache)])
    finally:
        for folder, _, _ in os.walk(cache):
            os.chmod(folder, 0o755)
    assert ready == {"sizes": [14, 1]}
    assert new["error"] == "DataError" and new["message"].startswith(
        f"cannot write the prepared dataset to the cache folder {cache}: Permission denied (nothing was kept"
    )
    assert sorted(cache.rglob("*")) == before


@pytest.mark.parametrize(
    "error",
    [
        lambda path: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        # array_record's C++ writer (seen on a full tmpfs): a RuntimeError without errno
        lambda path: RuntimeError(f"write() failed: No space left on device; writing {path}; at byte 16384"),
    ],
    ids=["OSError", "array_record"],
)
def test_a_full_disk_while_preparing_names_the_cache_and_keeps_nothing(tmp_path, monkeypatch, error):
    def write_then_fail(cls, path, examples):
        Path(path).write_bytes(b"partial")
        raise error(path)

    monkeypatch.setattr(file_adapters.ArrayRecordFileAdapter, "write_examples", classmethod(write_then_fail))
    make_folders(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as raised:
        data.load_dataset(fer_config(tmp_path, cache))
    message = str(raised.value)
    assert message.startswith(f"cannot write the prepared dataset to the cache folder {cache}: No space left on device")
    assert "\n" not in message
    assert [p for p in cache.rglob("*") if p.is_file() and p.name != ".prepare.lock"] == []
    assert not list(cache.glob("ferjax_fer2013/*/*"))


# Prepare FER-2013 from argv[1] into argv[2], but hang on the first image: a run to kill -9.
_HANG_WHILE_PREPARING = textwrap.dedent(
    """
    import sys, time
    from tests.test_datasets_fer2013 import fer_config
    from ferjax import data
    from ferjax.data import images
    images.decode = lambda *args, **kwargs: time.sleep(600)
    data.load_dataset(fer_config(sys.argv[1], sys.argv[2]))
    """
)


def test_a_live_preparation_is_waited_for_and_its_folder_removed_once_killed(tmp_path, caplog):
    make_folders(tmp_path)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", _HANG_WHILE_PREPARING, str(tmp_path), str(cache)], cwd=Path(__file__).parents[1]
    )
    loaded: dict = {}
    waiter = threading.Thread(target=lambda: loaded.update(splits=data.load_dataset(fer_config(tmp_path, cache))), daemon=True)
    try:
        deadline = time.monotonic() + 120
        while not (incomplete := list(cache.glob("ferjax_fer2013/*/incomplete.*"))):
            assert child.poll() is None and time.monotonic() < deadline, "the child never started preparing"
            time.sleep(0.2)
        waiter.start()
        waiter.join(1.5)
        assert waiter.is_alive() and incomplete[0].is_dir()  # the live preparation's folder is left alone
    finally:
        child.kill()  # SIGKILL: the child cannot clean up; the kernel drops its lock
        child.wait()
    waiter.join(120)
    assert len(loaded["splits"].train) == 14
    assert not incomplete[0].exists() and not list(cache.glob("ferjax_fer2013/*/incomplete.*"))
    assert f"Removed 1 incomplete folder(s) left by an interrupted preparation: {incomplete[0]}" in caplog.text
