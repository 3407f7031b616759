"""Atomic output writing, run-folder commits and locks, interrupts, and small I/O helpers.

Every output is written to a temporary file in the same folder and moved into place with
``os.replace``, so a failed run never leaves a half-written file and the previous result stays intact.
A run folder is built as a whole in a hidden ``.<name>.run.<random>`` sibling and swapped in by
:func:`atomic_dir`; :func:`run_lock` keeps a second run out of the same folder and, once it holds
the lock, :func:`recover_run_folder` repairs whatever a killed run left behind. The guarantees:

- **nothing replaced on failure**: any error, or Ctrl-C (:func:`interrupt_guard` records it even
  where a library swallows the ``KeyboardInterrupt``, and :func:`check_interrupted` raises it
  again at the next stage boundary and before the commit), leaves the earlier folder as it was;
- **recoverable at every instant**: the commit is two renames (``<name>`` -> ``.<name>.old``,
  then the new folder -> ``<name>``); a process killed between them leaves ``.<name>.old``,
  which the next run into that folder moves back (with a warning);
- **no leftovers**: temporary folders of killed runs are removed by the next run into the folder;
- **one clear line**: a read-only or full disk, or a folder without write permission, raise
  :class:`~accessibility._errors.OutputError` naming the folder and the fix (checked at the
  start where possible: :func:`check_output_folder`);
- **the user's umask**: folders are created with the permissions ``mkdir`` would give (not the
  0700 of ``tempfile.mkdtemp``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from accessibility._errors import AccessibilityWarning, OutputError, RunLockedError

log = logging.getLogger(__name__)

#: Free space a run folder needs at the least (the demo's outputs are ~60 MB), when no earlier
#: run in the same folder tells how much it takes.
MIN_FREE_BYTES = 64 * 2**20

_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
_FULL_TEXT = re.compile(r"disk is full|no space left|disk quota", re.I)


# ---------------------------------------------------------------------------------------------
# clear messages for output failures


def _umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_ancestor(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def output_error(exc: BaseException, path: str | os.PathLike) -> OutputError | None:
    """The one-line :class:`OutputError` for a write failure at ``path``, or None if it is not one.

    Recognised: a full disk or quota (``ENOSPC``, ``EDQUOT``, or a GDAL/SQLite "disk is full"),
    a read-only file system (``EROFS``) and missing permissions (``EACCES``, ``EPERM``).

    Examples
    --------
    >>> import errno
    >>> err = output_error(OSError(errno.EROFS, "Read-only file system"), "/mnt/ro/run")
    >>> "read-only" in str(err)
    True
    """
    if isinstance(exc, OutputError):
        return exc
    path = Path(path)
    folder = path.parent if path.suffix else path
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.ENOSPC, errno.EDQUOT) or (code is None and _FULL_TEXT.search(text)):
        try:
            free = _mb(shutil.disk_usage(_existing_ancestor(folder)).free)
        except OSError:
            free = "unknown"
        return OutputError(f"cannot write {path}: the disk is full ({free} free under {folder}): free some "
                           "space or choose another output folder (--out)")
    if code == errno.EROFS:
        return OutputError(f"cannot write {path}: {folder} is on a read-only file system: choose another "
                           "output folder (--out)")
    if code in (errno.EACCES, errno.EPERM) or isinstance(exc, PermissionError):
        return OutputError(f"cannot write {path}: no permission to write in {folder}: choose a folder you "
                           "can write to (--out) or ask its owner for write permission")
    return None


@contextlib.contextmanager
def clear_output_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn write failures under ``path`` into one-line :class:`OutputError` messages."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        err = output_error(exc, path)
        if err is None:
            raise
        raise err from exc


def check_output_folder(path: str | os.PathLike, *, need_bytes: int | None = None) -> None:
    """Before any work: can ``path`` (a run folder) be created or replaced, with enough space?

    Parameters
    ----------
    path : str or PathLike
        The run folder (it may not exist yet).
    need_bytes : int, optional
        Free space required; default the size of the folder's current contents (old and new
        results coexist until the commit) plus 20 %, at least :data:`MIN_FREE_BYTES`.

    Raises
    ------
    OutputError
        The parent folder cannot be created or written, or the disk has too little free space.

    Examples
    --------
    >>> import tempfile
    >>> check_output_folder(Path(tempfile.mkdtemp()) / "run", need_bytes=1)
    """
    path = Path(path)
    parent = path.absolute().parent
    with clear_output_errors(parent):
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    if need_bytes is None:
        old = _tree_size(path) if path.is_dir() else 0
        need_bytes = max(MIN_FREE_BYTES, int(old * 1.2))
    free = shutil.disk_usage(parent).free
    if free < need_bytes:
        raise OutputError(f"not enough free space for the outputs in {parent}: {_mb(free)} free, about "
                          f"{_mb(need_bytes)} needed: free some space or choose another output folder (--out)")


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


# ---------------------------------------------------------------------------------------------
# interrupts


class _InterruptState:
    def __init__(self) -> None:
        self.hit = False
        self.defer = 0
        self.active = 0


_STATE = _InterruptState()


@contextlib.contextmanager
def interrupt_guard() -> Iterator[None]:
    """Record every Ctrl-C (SIGINT) of the block, even one a library swallows.

    The handler sets a flag and raises ``KeyboardInterrupt`` as usual; where that exception is
    lost (raised inside a ``__del__``, e.g. ``zipfile``'s, Python only prints it), the flag stays
    set and :func:`check_interrupted` raises again at the next stage boundary, so a run never goes
    on to replace its outputs. Outside the main thread (Dask workers) it does nothing.

    Examples
    --------
    >>> with interrupt_guard():
    ...     check_interrupted()  # nothing pressed: returns
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):  # noqa: ARG001
        _STATE.hit = True
        if not _STATE.defer:
            raise KeyboardInterrupt

    if _STATE.active == 0:
        _STATE.hit = False
    _STATE.active += 1
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        _STATE.active -= 1
        signal.signal(signal.SIGINT, previous)
        if _STATE.active == 0:
            _STATE.hit = False


def check_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed inside :func:`interrupt_guard`."""
    if _STATE.hit:
        raise KeyboardInterrupt("interrupted (Ctrl-C)")


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Ctrl-C during the block is recorded but does not break it (the two commit renames)."""
    _STATE.defer += 1
    try:
        yield
    finally:
        _STATE.defer -= 1


# ---------------------------------------------------------------------------------------------
# atomic files and folders


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    A full disk, a read-only file system or missing permissions become one-line
    :class:`~accessibility._errors.OutputError` messages.

    Parameters
    ----------
    path : str or PathLike
        Final destination.
    suffix : str, optional
        Suffix of the temporary file (some writers choose the format from it); defaults to the
        destination's own suffix.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_text("1")
    >>> p.read_text()
    '1'
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    with clear_output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)  # writers such as GDAL refuse to overwrite; let them create it
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _old_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.run."


def make_temp_dir(path: str | os.PathLike) -> Path:
    """A new hidden temporary folder beside ``path`` with the user's umask (not mkdtemp's 0700)."""
    path = Path(path)
    with clear_output_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    return tmp


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, *, keep: tuple[str, ...] = (), before_commit: Callable[[], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (old contents are kept on failure).

    ``keep`` names sub-folders of the old ``path`` that are not this writer's to replace (e.g. a
    run folder's ``scenarios/`` and ``unit_siting/``, written by batch runs): they are moved into
    the new folder after the swap. If that move fails, the old folder is left in place (as
    ``.<name>.old``) rather than deleted, and the next run moves them (:func:`recover_run_folder`).

    ``before_commit`` (default :func:`check_interrupted`) runs after the block and before
    anything is replaced: an exception there leaves ``path`` as it was. Ctrl-C during the two
    renames of the commit is held back until they are done.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "a.csv").write_text("1")
    >>> sorted(p.name for p in out.iterdir())
    ['a.csv']
    """
    path = Path(path)
    tmp = make_temp_dir(path)
    try:
        yield tmp
        (before_commit or check_interrupted)()
        with clear_output_errors(path), _deferred_interrupts():
            _commit(tmp, path, keep)
    finally:
        if tmp.exists():
            _rmtree(tmp)


def _commit(tmp: Path, path: Path, keep: tuple[str, ...]) -> None:
    old = None
    if path.exists():
        old = _old_of(path)
        if old.exists():
            _rmtree(old)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)  # put the earlier results back
        raise
    if old is not None and _move_kept(old, path, keep):
        _rmtree(old)


def _move_kept(old: Path, path: Path, keep: tuple[str, ...]) -> bool:
    moved_all = True
    for name in keep:
        if (old / name).exists() and not (path / name).exists():
            try:
                os.replace(old / name, path / name)
            except OSError as exc:
                moved_all = False
                log.warning("could not keep %s in the new %s (%s): it stays in %s", name, path, exc, old)
    return moved_all


def recover_run_folder(path: str | os.PathLike, *, keep: tuple[str, ...] = ()) -> list[str]:
    """Repair what a killed run left beside the run folder ``path`` (call it holding :func:`run_lock`).

    - ``.<name>.old`` without ``<name>`` (killed between the commit's two renames): moved back,
      with an :class:`AccessibilityWarning` — the earlier results are restored;
    - ``.<name>.old`` beside ``<name>`` (killed after the swap): the ``keep`` sub-folders still in it
      are moved into ``<name>``, then it is removed;
    - hidden temporary folders of killed runs (``.<name>.run.*``): removed (logged with their size).

    Returns
    -------
    list of str
        What was done, one sentence each (also logged or warned).

    Examples
    --------
    >>> import tempfile
    >>> recover_run_folder(Path(tempfile.mkdtemp()) / "run")
    []
    """
    path = Path(path)
    done: list[str] = []
    if not path.parent.is_dir():
        return done
    old = _old_of(path)
    with clear_output_errors(path):
        if old.is_dir() and not path.exists():
            os.replace(old, path)
            msg = (f"{path}: an earlier run was stopped while replacing its results; the previous results "
                   f"were restored from {old.name}")
            warnings.warn(msg, AccessibilityWarning, stacklevel=3)
            done.append(msg)
        elif old.is_dir() and _move_kept(old, path, keep):
            _rmtree(old)
            done.append(f"{path}: removed {old.name} left by a run stopped after replacing its results")
            log.warning("%s", done[-1])
        for p in sorted(path.parent.glob(_temp_prefix(path) + "*")):
            if p.is_dir():
                size = _tree_size(p)
                _rmtree(p)
                done.append(f"{path}: removed {p.name} ({_mb(size)}) left by a run that was stopped")
                log.warning("%s", done[-1])
    return done


def _rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# one run per folder


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def _open_exclusive(path: Path) -> int:
    """Create ``path``; FileExistsError when it exists (the seam tests use to simulate a read-only disk)."""
    return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)


def _read_lock(lock: Path) -> dict | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "an unknown run"
    return (f"run pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"
            + (f" ({info.get('command')})" if info.get("command") else ""))


@contextlib.contextmanager
def run_lock(path: str | os.PathLike) -> Iterator[dict]:
    """Hold ``.<name>.lock`` beside the run folder ``path`` for the block: one run per folder.

    The lock file records the pid, host, start time and command. A lock of a dead process on
    this host (a killed run) is taken over, with a log line; a live one refuses.

    Raises
    ------
    RunLockedError
        Another live run holds the lock (its pid, host and start time are in the message).
    OutputError
        The lock cannot be written (read-only folder, no permission).

    Examples
    --------
    >>> import tempfile
    >>> with run_lock(Path(tempfile.mkdtemp()) / "run") as info:
    ...     info["pid"] == os.getpid()
    True
    """
    path = Path(path)
    lock = _lock_path(path)
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(sys.argv[:6])[:200], "token": os.urandom(8).hex()}
    with clear_output_errors(lock):
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = _open_exclusive(lock)
            except FileExistsError:
                _take_over_if_stale(lock, path)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(info, f)
            break
        else:
            raise RunLockedError(f"{path} is in use by {_describe(_read_lock(lock))}: wait for it to finish, or "
                                 f"delete {lock} if that run is gone")
    try:
        yield info
    finally:
        held = _read_lock(lock)
        if held is not None and held.get("token") == info["token"]:
            with contextlib.suppress(OSError):
                lock.unlink()


def _take_over_if_stale(lock: Path, path: Path) -> None:
    other = _read_lock(lock)
    if other is None:  # being written right now, or garbage: garbage older than a minute is stale
        try:
            age = dt.datetime.now().timestamp() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age < 60:
            raise RunLockedError(f"{path} is in use by another run (lock file {lock} is being written): try "
                                 "again in a minute, or delete the lock file if no run is going on")
    elif other.get("host") != socket.gethostname():
        raise RunLockedError(f"{path} is in use by {_describe(other)}: wait for it to finish, or delete {lock} "
                             "if that run is gone (it runs on another machine, so it cannot be checked from here)")
    elif _pid_alive(int(other.get("pid", -1))):
        raise RunLockedError(f"{path} is in use by {_describe(other)}: wait for it to finish (or stop it), "
                             "then run again")
    log.warning("%s: taking over the lock of a run that is gone (%s)", path, _describe(other))
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()


# ---------------------------------------------------------------------------------------------
# reproducible bytes


#: Date written into files whose format wants one (workbook properties, zip members):
#: identical runs give identical bytes.
FIXED_DATE = dt.datetime(2000, 1, 1, 0, 0, 0)


_W3CDTF = re.compile(r"(?<=>)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?(?=</dcterms:(?:created|modified)>)")


def reproducible_zip(path: str | os.PathLike) -> None:
    """Rewrite a zip container (e.g. ``.xlsx``) in place with every member dated :data:`FIXED_DATE`.

    Members keep their order, names, contents and compression; only the zip's timestamps change.
    """
    import zipfile

    path = Path(path)
    with zipfile.ZipFile(path) as zin:
        members = [(info, zin.read(info)) for info in zin.infolist()]
    tmp = path.with_name(path.name + ".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zout:
        for info, data in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            if info.filename == "docProps/core.xml":  # created/modified: the time of writing
                data = _W3CDTF.sub(FIXED_DATE.strftime("%Y-%m-%dT%H:%M:%SZ"), data.decode("utf-8")).encode("utf-8")
            zout.writestr(fixed, data)
    os.replace(tmp, path)


@contextlib.contextmanager
def reproducible_zip_after(path: str | os.PathLike) -> Iterator[None]:
    """Run the block (which writes the zip ``path``), then :func:`reproducible_zip` it.

    Put it between the temporary path and the writer: ``with atomic_path(p) as tmp,
    reproducible_zip_after(tmp), pd.ExcelWriter(tmp) as w:``.
    """
    yield
    reproducible_zip(path)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
