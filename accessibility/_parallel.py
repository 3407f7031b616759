"""One side task of a run in a forked process, beside the main one (two cores: twice the speed).

A run's output stages do not depend on one another: the tables can be written while the sites
are chosen, the maps while the charts, report and atlas are drawn; the unit maps of one run, or
the atlas's two halves, are shared by two processes (:class:`Counter` hands out the next item).
:func:`side_task` starts one of them in a child process made by ``fork`` (the child shares the parent's loaded study area
without copying or pickling it) and :meth:`SideTask.result` collects its answer.

What the child returns is pickled back. Its warnings (under the warning filters in force when it
started: what they ignore is ignored, what they make an error is an error) are recorded and shown
again in the parent (same message, category and place), so nothing the user should see is lost;
an exception in the child is raised again in the parent. The child ignores Ctrl-C: the parent owns the run, and on
any exception (Ctrl-C included) it stops the child (:meth:`SideTask.cancel`) before leaving, so
a failed or interrupted run leaves no process behind and the previous results intact (the
outputs are written into the run's temporary folder).

The task runs in the calling process instead (same answer, no speed-up) when forking is not
safe or not possible: not Linux, one core, inside a daemonic process (a Dask worker), or
``ACCESSIBILITY_WORKERS=1``. A child may run HiGHS only if the parent has not yet (a forked copy
of HiGHS's thread pool can hang): siting forks a lane only while
:func:`accessibility.siting.solver_started` is false.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from accessibility._errors import DataError

__all__ = ["Counter", "SideTask", "fork_ok", "side_task", "two_halves", "workers"]


def workers() -> int:
    """Processes a run may use: ``ACCESSIBILITY_WORKERS`` if set (a whole number >= 1), else the
    cores of the machine, at most 2 (a run has at most one side task at a time)."""
    raw = os.environ.get("ACCESSIBILITY_WORKERS", "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise DataError(f"environment variable ACCESSIBILITY_WORKERS is {raw!r}: use a whole number "
                            ">= 1 (1: everything in one process)")
        return n
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def fork_ok(requested: int | None = None) -> bool:
    """Whether work may go to a forked process: Linux, the main thread of a process that may have
    children (not a daemonic one such as a Dask worker or a side task itself), and ``requested``
    (default :func:`workers`) at least 2."""
    n = workers() if requested is None else int(requested)
    return (n >= 2 and sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and not mp.current_process().daemon
            and threading.current_thread() is threading.main_thread())


def _can_fork() -> bool:
    return fork_ok()


class SideTask:
    """A task started by :func:`side_task`: in a child process, or already done inline."""

    def __init__(self, func: Callable[..., Any], args: tuple, kwargs: dict, *, fork: bool):
        self._proc = self._conn = None
        self._done: tuple | None = None
        if not fork:
            try:
                self._done = ("ok", func(*args, **kwargs), [])
            except Exception as exc:  # noqa: BLE001  (raised again by result(), as a forked task's)
                self._done = ("error", exc, [])
            return
        ctx = mp.get_context("fork")
        parent_end, child_end = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child_end, func, args, kwargs), daemon=True)
        self._proc.start()
        child_end.close()
        self._conn = parent_end

    @property
    def forked(self) -> bool:
        """Whether the task runs in a child process."""
        return self._proc is not None

    def result(self) -> Any:
        """The task's return value (waits for it); its warnings are shown here, its exception
        raised here."""
        if self._done is None:
            try:
                self._done = self._conn.recv()
            except EOFError:
                self._proc.join()
                self._done = ("error", RuntimeError(
                    f"a side task of the run stopped without an answer (exit code {self._proc.exitcode}); "
                    "run again with ACCESSIBILITY_WORKERS=1 to run it in one process"), [])
            finally:
                self._conn.close()
                self._proc.join()
        kind, value, caught = self._done
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if kind == "error":
            raise value
        return value

    def cancel(self) -> None:
        """Stop the child (if it still runs) and wait for it."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()


def side_task(func: Callable[..., Any], /, *args, fork: bool = True, **kwargs) -> SideTask:
    """Start ``func(*args, **kwargs)`` beside the caller (see the module's notes); ``fork=False``
    runs it here, now.

    Examples
    --------
    >>> t = side_task(sum, [1, 2, 3])
    >>> t.result()
    6
    """
    return SideTask(func, args, kwargs, fork=fork and _can_fork())


def two_halves(func: Callable[[list, int], Any], items, *, fork: bool = True) -> tuple[Any, Any]:
    """``(func(first half, 0), func(second half, k))`` with the second half in a side task, drawn
    while the first is (``k`` = the second half's first position; ``None`` for an empty half).

    The halves depend only on the number of items, so one process gives the same answer.

    Examples
    --------
    >>> two_halves(lambda part, k: [k + i for i, _ in enumerate(part)], "abcde", fork=False)
    ([0, 1, 2], [3, 4])
    """
    items = list(items)
    half = (len(items) + 1) // 2
    second = side_task(func, items[half:], half, fork=fork) if items[half:] else None
    try:
        first = func(items[:half], 0)
        return first, (second.result() if second is not None else None)
    finally:
        if second is not None:
            second.cancel()


def _child(conn, func, args, kwargs) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C
    with warnings.catch_warnings(record=True) as caught:
        try:
            value = func(*args, **kwargs)
            kind = "ok"
        except BaseException as exc:  # noqa: BLE001  (everything goes back to the parent)
            exc.add_note("in a forked side task:\n" + traceback.format_exc())
            kind, value = "error", exc
    seen = [(w.message, w.category, w.filename, w.lineno) for w in caught]
    try:
        conn.send((kind, value, seen))
    except Exception as exc:  # noqa: BLE001  (an unpicklable answer or exception)
        text = "".join(traceback.format_exception(value)) if kind == "error" else repr(exc)
        conn.send(("error", RuntimeError(f"a side task's answer could not be sent back: {text}"), seen))
    conn.close()


class Counter:
    """A position shared by forked processes: each :meth:`run` takes the next item until none is
    left, so two processes share a list of tasks of unequal size (create it before forking)."""

    def __init__(self):
        self._next = mp.get_context("fork").Value("q", 0)

    def take(self) -> int:
        with self._next.get_lock():
            i = self._next.value
            self._next.value = i + 1
        return i

    def run(self, func, items, *, progress: bool = False, desc: str = "") -> dict:
        """``{item: func(item)}`` for the items this process took."""
        items = list(items)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc=desc, leave=False)
        out = {}
        try:
            while (i := self.take()) < len(items):
                out[items[i]] = func(items[i])
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return out
