"""The `ivi` command's exit statuses, and the one line an unexpected error gets, shared by the
CLI and each command's module."""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0  # done (a file with quarantined rows included)
EXIT_REJECTED = 1  # the file, or the request, is refused as a whole: one line on stderr says why
EXIT_USAGE = 2  # usage error


def failure_line(path: Path, error: Exception) -> str:
    """The one line for an error reading `path` that is not the file's content's fault."""
    if isinstance(error, MemoryError):
        return f"{path} rejected: out of memory"
    if isinstance(error, OSError):
        return f"{path}: {error.strerror or error}"
    return f"{path}: internal error ({type(error).__name__}: {error})"
