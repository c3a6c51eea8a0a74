"""Each uploaded file's state, put together from the store and Prefect: the raw object, its
report (`processed/_reports/...`, written last, so it means done) and its latest run.

The status a person reads:
- processed / rejected: the report holds the object's current eTag (rejected: the file as a
  whole could not be read with its contract);
- running: a run for it is pending or running (or finished a moment ago, report on its way);
- failed: its latest run failed, crashed or was cancelled, and no report holds the version;
- queued: nothing has picked it up yet (the event is on its way, or the reconcile will).
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from minio import Minio
from minio.error import S3Error

from console.prefect_runs import FlowRun
from objectstore import store

RECENT_FILES = 30
QUARANTINE_PREVIEW_ROWS = 20
PREVIEW_BYTES = 256 * 1024
RAW_COLUMN = "_raw"  # the record's text, set only for rows with a wrong field count
_FAILED_STATES = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}
_ACTIVE_STATES = {"PENDING", "RUNNING", "PAUSED"}
# What the pipeline keeps in the raw bucket for itself (SeaweedFS' multipart parts).
_NOT_UPLOADS = (".uploads/",)
_NOT_AN_OBJECT = store.NO_OBJECT | {"InvalidObjectName", "XMinioInvalidObjectName", "KeyTooLongError", "InvalidArgument"}


T = TypeVar("T")


class SharedReading(Generic[T]):
    """`read()`'s value, read again at most every `seconds` whoever asks: ten open pages
    polling the recent files cost one listing of the raw bucket, not ten. Callers arriving
    while it is being read wait for that reading rather than start their own."""

    def __init__(self, read: Callable[[], T], seconds: float) -> None:
        self._read = read
        self._seconds = seconds
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = float("-inf")

    def __call__(self) -> T:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._seconds:
                self._value = self._read()
                self._at = time.monotonic()
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._at = float("-inf")


@dataclass(frozen=True)
class RawFile:
    key: str
    etag: str
    size: int
    uploaded_at: datetime | None


@dataclass(frozen=True)
class FileState:
    file: RawFile
    status: str  # queued | running | processed | rejected | failed
    report: dict[str, Any] | None  # the report of this version, when there is one
    run: FlowRun | None
    seconds: float | None  # the run's time, or so far for a running one

    @property
    def contract(self) -> str:
        return self.file.key.split("/", 1)[0] if "/" in self.file.key else ""

    def count(self, name: str) -> int | None:
        value = (self.report or {}).get(name)
        return value if isinstance(value, int) else None


def status_of(file: RawFile, report: dict[str, Any] | None, run: FlowRun | None) -> str:
    """The status a person reads (see the module's docstring)."""
    if report is not None and report.get("source_etag") == file.etag:
        return "rejected" if report.get("status") == "rejected" else "processed"
    if run is not None and (run.etag in (None, file.etag)):
        if run.state_type in _FAILED_STATES:
            return "failed"
        if run.state_type in _ACTIVE_STATES or run.state_type == "COMPLETED":
            return "running"
    return "queued"


def _seconds(report: dict[str, Any] | None, run: FlowRun | None, now: datetime) -> float | None:
    if report is not None and isinstance(report.get("duration_s"), int | float):
        return float(report["duration_s"])
    if run is not None and run.start_time is not None:
        return max(0.0, ((run.end_time or now) - run.start_time).total_seconds())
    return None


def file_state(file: RawFile, report: dict[str, Any] | None, run: FlowRun | None,
               now: datetime | None = None) -> FileState:
    current = report if report is not None and report.get("source_etag") == file.etag else None
    return FileState(
        file=file, status=status_of(file, report, run), report=current, run=run,
        seconds=_seconds(current, run, now or datetime.now(UTC)),
    )


def recent_raw_files(client: Minio, bucket: str, limit: int = RECENT_FILES) -> list[RawFile]:
    """The newest uploads first (a listing of the raw bucket: no other index to keep right)."""
    files = [
        RawFile(key=o.object_name, etag=(o.etag or "").strip('"'), size=o.size or 0,
                uploaded_at=o.last_modified)
        for o in client.list_objects(bucket, recursive=True)
        if o.object_name and not o.is_dir and not o.object_name.startswith(_NOT_UPLOADS)
    ]
    oldest = datetime.min.replace(tzinfo=UTC)
    files.sort(key=lambda f: (f.uploaded_at or oldest, f.key), reverse=True)
    return files[:limit]


def raw_file(client: Minio, bucket: str, key: str) -> RawFile | None:
    """The raw object, or None for a key the store has no object under (or refuses as a key)."""
    try:
        stat = client.stat_object(bucket, key)
    except S3Error as error:
        if error.code in _NOT_AN_OBJECT:
            return None
        raise
    except ValueError:  # a key the client refuses before asking (empty, not UTF-8)
        return None
    return RawFile(key=key, etag=(stat.etag or "").strip('"'), size=stat.size or 0,
                   uploaded_at=stat.last_modified)


def report_of(client: Minio, processed_bucket: str, key: str) -> dict[str, Any] | None:
    return store.read_report(client, processed_bucket, store.OutputKeys.for_key(key).report)


def quarantine_preview(client: Minio, quarantine_bucket: str, key: str,
                       rows: int = QUARANTINE_PREVIEW_ROWS) -> tuple[list[str], list[dict[str, str]]]:
    """The header and first `rows` rows of the file's rejected CSV, or nothing when there is
    none. Only its first PREVIEW_BYTES are read: a quarantine can be as big as the file."""
    rejected = store.find_object(client, quarantine_bucket, store.OutputKeys.for_key(key).rejected)
    if rejected is None:
        return [], []
    response = client.get_object(quarantine_bucket, rejected.key, length=min(rejected.size, PREVIEW_BYTES) or None)
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    reader = csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
    found = list(reader)
    if rejected.size > len(data) and found:
        found.pop()  # cut off by the byte limit
    found = found[:rows]
    columns = [c for c in reader.fieldnames or [] if c != RAW_COLUMN or any(row.get(c) for row in found)]
    return columns, found


@dataclass(frozen=True)
class Download:
    kind: str  # csv | json | rejected | original
    url: str


def download_links(signer: Minio, client: Minio, buckets: dict[str, str], key: str,
                   seconds: int) -> list[Download]:
    """Short-lived pre-signed links to the file's outputs that exist. `signer` is a client
    for the address a browser reaches the store at (signing needs no request to it)."""
    keys = store.OutputKeys.for_key(key)
    wanted = [
        ("csv", buckets["processed"], keys.csv),
        ("json", buckets["processed"], keys.json),
        ("rejected", buckets["quarantine"], keys.rejected),
        ("original", buckets["quarantine"], keys.original),
    ]
    links = []
    for kind, bucket, object_key in wanted:
        if store.find_object(client, bucket, object_key) is None:
            continue
        filename = quote(object_key.rsplit("/", 1)[-1], safe="")
        url = signer.presigned_get_object(
            bucket, object_key, expires=timedelta(seconds=seconds),
            response_headers={"response-content-disposition": f"attachment; filename*=UTF-8''{filename}"},
        )
        links.append(Download(kind=kind, url=url))
    return links
