"""Atomic output writing and small I/O helpers.

Every output is written to a temporary file in the same folder and moved into place with
``os.replace``, so a failed run never leaves a half-written file and the previous result stays intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or PathLike
        Final destination.
    suffix : str, optional
        Suffix of the temporary file (some writers choose the format from it); defaults to the
        destination's own suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (old contents are kept on failure).

    ``keep`` names sub-folders of the old ``path`` that are not this writer's to replace (e.g. a
    run folder's ``scenarios/`` and ``unit_siting/``, written by batch runs): they are moved into
    the new folder after the swap. If that move fails, the old folder is left in place (as
    ``.<name>.old``) rather than deleted.
    """
    import logging

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                _rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            moved_all = True
            for name in keep:
                if (old / name).exists() and not (path / name).exists():
                    try:
                        os.replace(old / name, path / name)
                    except OSError as exc:
                        moved_all = False
                        logging.getLogger(__name__).warning(
                            "could not keep %s in the new %s (%s): it stays in %s", name, path, exc, old)
            if moved_all:
                _rmtree(old)
    finally:
        if tmp.exists():
            _rmtree(tmp)


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
