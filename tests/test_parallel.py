"""Tests of accessibility._parallel: a forked call's result, warnings, errors and cancellation."""

from __future__ import annotations

import time
import warnings

import pytest

from accessibility import _parallel

pytestmark = pytest.mark.skipif(_parallel.fork_workers(2) < 2, reason="no fork on this platform")


def _warn_and_return(x):
    warnings.warn(f"careful with {x}", UserWarning, stacklevel=1)
    return {"x": x}


def _fail():
    raise ValueError("bad input in the child")


def test_result_and_warnings_come_back():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _parallel.Forked(_warn_and_return, 3).result() == {"x": 3}
    assert [str(w.message) for w in caught] == ["careful with 3"]


def test_errors_are_raised_in_the_parent_with_the_childs_traceback():
    with pytest.raises(ValueError, match="bad input in the child") as info:
        _parallel.Forked(_fail).result()
    assert any("in a forked worker" in note and "_fail" in note for note in info.value.__notes__)


def test_cancel_stops_a_running_child(tmp_path):
    marker = tmp_path / "written"

    def slow():
        time.sleep(30)
        marker.write_text("late")

    job = _parallel.Forked(slow)
    t0 = time.perf_counter()
    job.cancel()
    assert time.perf_counter() - t0 < 10 and not marker.exists()


def test_counter_shares_items_between_processes():
    take = _parallel.Counter()
    items = list(range(20))
    other = _parallel.Forked(take.run, lambda i: i * i, items)
    mine = take.run(lambda i: i * i, items)
    theirs = other.result()
    assert not set(mine) & set(theirs)
    assert {**mine, **theirs} == {i: i * i for i in items}
