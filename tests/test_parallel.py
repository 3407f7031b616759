"""Side tasks in a forked process: same answer as inline, warnings and errors reach the caller,
nothing is left running, and the run's tables are the same bytes either way."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from accessibility import _parallel
from accessibility._errors import AccessibilityWarning, DataError
from accessibility._parallel import side_task, workers

forks = pytest.mark.skipif(not _parallel.fork_ok(), reason="forking needs Linux, 2 cores, the main thread")


def _answer(x):
    warnings.warn(f"careful with {x}", AccessibilityWarning, stacklevel=1)
    return {"pid": os.getpid(), "x": x * 2}


def _fails():
    raise DataError("bad.csv: field 'lon' is empty; fix: fill it")


@forks
def test_side_task_runs_in_a_child_and_gives_back_answer_and_warnings():
    with warnings.catch_warnings():
        # the child applies the warning filters in force when it started (pytest's: error)
        warnings.simplefilter("default", AccessibilityWarning)
        t = side_task(_answer, 21)
    assert t.forked
    with pytest.warns(AccessibilityWarning, match="careful with 21"):
        got = t.result()
    assert got["x"] == 42 and got["pid"] != os.getpid()


@forks
def test_side_task_error_is_raised_in_the_caller():
    """With the child's traceback as a note; also a warning the filters make an error (pytest's
    filterwarnings = error)."""
    t = side_task(_fails)
    with pytest.raises(DataError, match="bad.csv: field 'lon'") as info:
        t.result()
    assert any("in a forked side task" in n and "_fails" in n for n in info.value.__notes__)
    with pytest.raises(AccessibilityWarning, match="careful with 3"):
        side_task(_answer, 3).result()


@forks
def test_cancel_stops_the_child(tmp_path):
    marker = tmp_path / "written"

    def slow():
        time.sleep(30)
        marker.write_text("late")

    t = side_task(slow)
    t0 = time.perf_counter()
    t.cancel()
    assert time.perf_counter() - t0 < 10 and not t._proc.is_alive() and not marker.exists()


@forks
def test_counter_shares_items_between_processes():
    take = _parallel.Counter()
    items = list(range(20))
    other = side_task(take.run, lambda i: i * i, items)
    mine = take.run(lambda i: i * i, items)
    theirs = other.result()
    assert not set(mine) & set(theirs)
    assert {**mine, **theirs} == {i: i * i for i in items}


@forks
def test_a_side_task_does_not_fork_again():
    """A side task is a daemonic process: work it hands on runs in it (no third process)."""
    t = side_task(lambda: (_parallel.fork_ok(), side_task(os.getpid).forked))
    assert t.result() == (False, False)


def test_one_worker_runs_inline(monkeypatch):
    monkeypatch.setenv("ACCESSIBILITY_WORKERS", "1")
    assert workers() == 1
    with pytest.warns(AccessibilityWarning, match="careful with 1"):
        t = side_task(_answer, 1)  # inline: warned at once
    assert not t.forked and t.result()["pid"] == os.getpid()
    with pytest.raises(DataError):
        side_task(_fails).result()


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_bad_worker_count_is_a_clear_error(monkeypatch, raw):
    monkeypatch.setenv("ACCESSIBILITY_WORKERS", raw)
    with pytest.raises(DataError, match="ACCESSIBILITY_WORKERS.*whole number >= 1"):
        workers()


def test_tables_written_in_the_run_side_task_are_the_inline_bytes(demo_run, tmp_path, monkeypatch):
    """The session's run wrote its tables in a side task (forked where possible): writing them
    again in this process gives the same bytes."""
    from accessibility.pipeline import _write_tables

    monkeypatch.setenv("ACCESSIBILITY_WORKERS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        files, _ = _write_tables(tmp_path, demo_run.study, demo_run.results, demo_run.coverage)
    assert len(files) >= 4
    for p in files:
        assert p.read_bytes() == (demo_run.output_dir / p.name).read_bytes(), p.name


SITING_SCRIPT = """
import sys, warnings
from pathlib import Path
from accessibility import _parallel, pipeline, siting
from accessibility._errors import AccessibilityWarning
warnings.simplefilter("ignore", AccessibilityWarning)
study = pipeline.load_study_area(pipeline.config_for(sys.argv[1]), progress=False)
results, _ = pipeline.analyse(study, progress=False)
print("forks", _parallel._can_fork() and not siting.solver_started())
pipeline.write_siting(Path(sys.argv[2]), study, results, k_max=10)
"""


@forks
def test_siting_in_a_side_process_gives_the_serial_bytes(demo_area, demo_run, tmp_path):
    """A fresh process (no HiGHS solve yet) sites the elderly-care circle in a forked lane; the
    session's run may or may not have (other tests solve first): both give the same bytes, and
    the same as one process (ACCESSIBILITY_WORKERS=1)."""
    import subprocess
    import sys

    outs = {}
    for n in ("2", "1"):
        out = tmp_path / f"w{n}"
        out.mkdir()
        env = {**os.environ, "ACCESSIBILITY_WORKERS": n}
        p = subprocess.run([sys.executable, "-c", SITING_SCRIPT, str(demo_area), str(out)], env=env,
                           capture_output=True, text=True, timeout=600, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        assert f"forks {n == '2'}" in p.stdout
        outs[n] = {f.name: f.read_bytes() for f in sorted(out.glob("siting_*"))}
    assert outs["2"].keys() == outs["1"].keys() and any(k.startswith("siting_eldercare") for k in outs["2"])
    for name, data in outs["2"].items():
        assert data == outs["1"][name], name
        assert data == (demo_run.output_dir / name).read_bytes(), name
