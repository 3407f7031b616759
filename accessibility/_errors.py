"""Typed exceptions: each is also a built-in, so ``except ValueError`` keeps working."""

from __future__ import annotations


class AccessibilityError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ValueError, AccessibilityError):
    """A study-area configuration is wrong: names the file, the key and the fix."""


class DataError(ValueError, AccessibilityError):
    """An input data file is unusable: names the file, the field and the fix."""


class CRSMismatchError(DataError):
    """Coordinates are in another reference system than declared (or none is declared)."""


class OutputError(OSError, AccessibilityError):
    """An output cannot be written: read-only or full disk, no permission, a folder in use by another
    run. Names the folder and the fix; the earlier results are left as they were."""


class RunLockedError(OutputError):
    """Another run is writing into the same output folder (names its pid, host and start time)."""


class BatchError(RuntimeError, AccessibilityError):
    """A batch cannot go on (e.g. no Dask worker for longer than the configured time)."""


class AccessibilityWarning(UserWarning):
    """Something the user should act on, but the run can go on."""


def problems_message(source: str, problems: list[str]) -> str:
    """Format several problems of one input into one message (gather, then raise once)."""
    lines = [f"{source}: {len(problems)} problem(s):"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)
