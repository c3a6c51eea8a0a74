"""Helpers for the Delta Lake tests: read a contract's table on the session's store, and run
the lake core in a separate process (a second writer, or one that gets killed)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable

from ivi.settings import Settings
from lake.schema import SOURCE_ETAG, SOURCE_KEY
from lake.storage import s3_storage_options, table_uri
from lake.table import COMMIT_KEY
from tests.paths import REPO_ROOT


def storage_options(settings: Settings) -> dict[str, str]:
    return s3_storage_options(settings.s3_endpoint, settings.s3_access_key,
                              settings.s3_secret_key.get_secret_value(), settings.s3_region)


def lake_table(settings: Settings, name: str, version: int | None = None) -> DeltaTable:
    table = DeltaTable(table_uri(settings.lake_bucket, name), storage_options=storage_options(settings))
    if version is not None:
        table.load_as_version(version)
    return table


def rows_of_key(table: DeltaTable, key: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of one raw object in the table (at the table's loaded version)."""
    return list(table.to_pyarrow_dataset().to_table(filter=pc.field(SOURCE_KEY) == key, columns=columns).to_pylist())


def commits_of_key(table: DeltaTable, key: str) -> list[dict[str, Any]]:
    """The commits that wrote rows of `key`, newest first."""
    return [commit for commit in table.history() if commit.get(COMMIT_KEY) == key]


def etags_of_key(table: DeltaTable, key: str) -> list[str]:
    return [row[SOURCE_ETAG] for row in rows_of_key(table, key, [SOURCE_ETAG])]


# A writer in a process of its own: `replace_source` of `rows` int ids (from `first_id`) for one
# key, with the given columns. Once the last chunk is taken (its data files are in the store,
# its commit not made yet, planned on the table as it was when it started): "kill" makes the
# process kill itself (SIGKILL); "pause" creates the file `pause` names and waits (deadline
# 120 s) for the file `go` names. "current" names a file holding the raw object's current
# eTags: the writer's `still_current` reads it.
WRITER = r"""
import json, os, signal, sys, time
from pathlib import Path
import pyarrow as pa
from lake.schema import LakeColumn
from lake.table import LakeTarget, SourceVersion, replace_source

job = json.loads(sys.argv[1])
target = LakeTarget(job["uri"], job["name"], [LakeColumn("id", "int"), LakeColumn("nome", "string")], job["options"])

def chunks():
    first = job.get("first_id", 0)
    for start in range(first, first + job["rows"], job["chunk"]):
        ids = list(range(start, min(start + job["chunk"], first + job["rows"])))
        yield pa.table({"id": pa.array(ids, pa.int64()), "nome": [f"n{i}" for i in ids]})
    if job.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if job.get("pause"):
        Path(job["pause"]).touch()
        deadline = time.monotonic() + 120
        while not Path(job["go"]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("nobody said go")
            time.sleep(0.05)

def still_current():
    return "current" not in job or job["etag"] in Path(job["current"]).read_text().split()

for attempt in range(20):  # as the export task does: a commit that lost a race is retried
    try:
        result = replace_source(target, chunks(), SourceVersion(job["key"], job["etag"]),
                                still_current=still_current, target_file_size=job.get("file_size"))
        break
    except Exception as error:
        if type(error).__name__ != "CommitFailedError":
            raise
print(json.dumps({"version": result.version, "rows": result.rows, "skipped": result.skipped}))
"""


def start_writer(settings: Settings, uri: str, key: str, etag: str, rows: int, **job: Any) -> subprocess.Popen[str]:
    body = {"uri": uri, "name": uri.rsplit("/", 1)[-1], "options": storage_options(settings), "key": key,
            "etag": etag, "rows": rows, "chunk": job.pop("chunk", 5_000), **job}
    return subprocess.Popen([sys.executable, "-c", WRITER, json.dumps(body)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
