"""Compaction and vacuum: every upload is one commit with a few small files, so a table
that takes many uploads gathers many small files and many removed ones.

`optimize.compact()` rewrites small files into bigger ones (one commit; readers see the same
rows); `vacuum` deletes files no version within the retention needs any more, and the files
of writers killed before their commit (`full=True`: files no commit refers to).
"""

from __future__ import annotations

from typing import Any

from lake.table import open_table

DEFAULT_RETENTION_HOURS = 168  # Delta's default: a reader may still read a week-old version


def maintain(uri: str, storage_options: dict[str, str], retention_hours: int = DEFAULT_RETENTION_HOURS) -> dict[str, Any]:
    """Compact, then vacuum one table; what each did (an absent table: nothing)."""
    table = open_table(uri, storage_options)
    if table is None:
        return {"table": uri, "skipped": "no table yet"}
    compacted = table.optimize.compact()
    removed = table.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=retention_hours >= DEFAULT_RETENTION_HOURS,
        full=True,
    )
    return {
        "table": uri,
        "version": table.version(),
        "files_added": compacted.get("numFilesAdded", 0),
        "files_removed": compacted.get("numFilesRemoved", 0),
        "files_vacuumed": len(removed),
    }
