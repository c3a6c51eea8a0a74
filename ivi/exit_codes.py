"""The `ivi` command's exit statuses, shared by the CLI and each command's module."""

from __future__ import annotations

EXIT_OK = 0  # done (a file with quarantined rows included)
EXIT_REJECTED = 1  # the file, or the request, is refused as a whole: one line on stderr says why
EXIT_USAGE = 2  # usage error
