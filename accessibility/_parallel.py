"""Work handed to a forked process: the maps stage writes independent pages on a second core.

A :class:`Forked` call runs ``func(*args, **kwargs)`` in a child made by ``fork`` (it inherits
everything computed so far, nothing is pickled on the way in) and sends back the return value, the
warnings it raised and its error, if any. Only where ``fork`` exists, in a process that may have
children, with more than one CPU (:func:`fork_workers`); callers keep a serial path for the rest.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
import warnings
from typing import Any


def fork_workers(requested: int | None = None) -> int:
    """How many processes may work at once: ``requested`` (default: the CPUs, at most 2), or 1 where
    a child cannot be forked (no ``fork`` start method, or a daemonic process such as a pool worker)."""
    if "fork" not in mp.get_all_start_methods() or mp.current_process().daemon:
        return 1
    n = min(2, os.cpu_count() or 1) if requested is None else int(requested)
    return max(1, n)


class Forked:
    """``func(*args, **kwargs)`` running in a forked child; :meth:`result` waits for it.

    The child's warnings are raised again in the parent (same message, category and place); its
    exception is raised again with the child's traceback as a note. :meth:`cancel` stops a child
    still running (e.g. when the parent fails), so it writes nothing afterwards.
    """

    def __init__(self, func, *args, **kwargs):
        ctx = mp.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(send, func, args, kwargs), daemon=True)
        self._proc.start()
        send.close()
        self._done = False

    def result(self) -> Any:
        try:
            ok, value, caught = self._recv.recv()
        except EOFError:
            ok, value, caught = False, RuntimeError(f"a forked worker died (exit code {self._proc.exitcode})"), []
        finally:
            self._recv.close()
            self._proc.join()
            self._done = True
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        if not self._done:
            self._proc.terminate()
            self._proc.join()
            self._recv.close()
            self._done = True


def _child(send, func, args, kwargs) -> None:
    with warnings.catch_warnings(record=True) as caught:  # the filters stay the parent's
        try:
            value, ok = func(*args, **kwargs), True
        except BaseException as exc:  # noqa: BLE001  (sent to the parent, which raises it)
            exc.add_note("in a forked worker:\n" + traceback.format_exc())
            value, ok = exc, False
    records = [(w.message, w.category, w.filename, w.lineno) for w in caught]
    try:
        send.send((ok, value, records))
    except Exception as exc:  # noqa: BLE001  (an unpicklable result or error: send its text)
        send.send((False, RuntimeError(f"a forked worker's result could not be sent back: {exc!r}; "
                                       f"it was {value!r}"), records))
    finally:
        send.close()


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
