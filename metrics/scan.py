"""An incremental scan of `processed/_reports/`: each report counted once.

Every scrape lists the reports (a listing returns each object's eTag, so nothing is read
twice) and reads only those whose eTag differs from the one counted for that key: a new
file, or a report written again (a new version of the file, or a forced run). A report seen
twice with the same eTag is never counted again; one rewritten is the record of another run
and counts as one. The eTag remembered is the one the read returned, so a report rewritten
between the listing and the read is counted once, as its newer content.

The latency from upload to report is the report's Last-Modified minus the raw object's, read
from a listing of the raw bucket (millisecond precision where the store gives it), and only
while that object is still the version the report describes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

from minio import Minio

from metrics.figures import PipelineMetrics
from objectstore.output_names import REPORTS_PREFIX

log = logging.getLogger("ivi.metrics")


@dataclass(frozen=True)
class ReportObject:
    """A report as read: its content, its eTag and when it was written."""

    document: dict[str, object] | None  # None: not a JSON object
    etag: str
    written: datetime | None


def read_report_object(client: Minio, bucket: str, key: str) -> ReportObject:
    """The report `key` with the eTag and Last-Modified of the version read."""
    response = client.get_object(bucket, key)
    try:
        etag = (response.headers.get("ETag") or "").strip('"')
        header = response.headers.get("Last-Modified")
        body = response.read()
    finally:
        response.close()
        response.release_conn()
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    written = parsedate_to_datetime(header) if header else None
    return ReportObject(document if isinstance(document, dict) else None, etag, written)


def upload_time(client: Minio, bucket: str, key: str, etag: str) -> datetime | None:
    """When the raw object `key` at `etag` was uploaded; None once it is gone or replaced."""
    for obj in client.list_objects(bucket, prefix=key):
        if obj.object_name == key:
            return obj.last_modified if (obj.etag or "").strip('"') == etag else None
    return None


def latency_seconds(client: Minio, report: dict[str, object], written: datetime | None) -> float | None:
    bucket, key, etag = (report.get(name) for name in ("source_bucket", "source_key", "source_etag"))
    if written is None or not all(isinstance(value, str) and value for value in (bucket, key, etag)):
        return None
    uploaded = upload_time(client, str(bucket), str(key), str(etag))
    return None if uploaded is None else (written - uploaded).total_seconds()


@dataclass
class ReportScanner:
    """Counts the reports of one processed bucket into `figures`, each version once."""

    client: Minio
    processed_bucket: str
    figures: PipelineMetrics
    counted: dict[str, str] = field(default_factory=dict)  # report key -> eTag counted
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scan(self) -> int:
        """Count the reports not counted yet; the number counted. One scan at a time: a scrape
        that arrives during another's scan waits for it and then finds nothing new."""
        with self._lock:
            started = time.monotonic()
            new = 0
            for listed in self.client.list_objects(self.processed_bucket, prefix=REPORTS_PREFIX, recursive=True):
                key = listed.object_name
                if not key or listed.is_dir or self.counted.get(key) == (listed.etag or "").strip('"'):
                    continue
                new += self._count(key, (listed.etag or "").strip('"'), listed.last_modified)
            self.figures.reports_known.set(len(self.counted))
            self.figures.scan_seconds.set(time.monotonic() - started)
            return new

    def _count(self, key: str, listed_etag: str, listed_at: datetime | None) -> int:
        report = read_report_object(self.client, self.processed_bucket, key)
        if self.counted.get(key) == report.etag:  # rewritten back between listing and read
            return 0
        self.counted[key] = report.etag
        if report.document is None:
            log.warning("report %s is not a JSON object: not counted", key)
            self.figures.unreadable.inc()
            return 0
        # The listing's time when it is still the version read: milliseconds, not the header's seconds.
        written = listed_at if listed_etag == report.etag and listed_at else report.written
        self.figures.count(report.document, latency_seconds(self.client, report.document, written))
        return 1


def guarded(figures: PipelineMetrics, step: str, run: Callable[[], object]) -> bool:
    """Run one step of a scrape; on any error log it, count it, and say so (a scrape still
    answers with what it has)."""
    try:
        run()
    except Exception as error:  # noqa: BLE001 - the store or Prefect away must not fail a scrape
        log.warning("metrics step %s failed: %s: %s", step, type(error).__name__, error)
        figures.errors.labels(step).inc()
        return False
    return True
