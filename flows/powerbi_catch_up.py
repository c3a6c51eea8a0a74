"""powerbi_catch_up: push what a throttled export deferred, exactly once, and say so in the report.

The `powerbi-catch-up` deployment (prefect.yaml) runs it every 10 minutes. For each deferral
under `_ivi/powerbi-deferred/` whose Retry-After has passed (`due_only=False`: all of them), it
takes the object version's lock (the one `process_object` takes, so a rerun of that version
and any other catch-up wait), reads the deferral again under it (gone: somebody finished it),
and pushes the kept rows through `push_clean_rows`, the export's own code: the same batches
with the same cache keys, so the batches accepted before the deferral are found in the cache
(`ivi-results`) and only the rest are posted. Then the report says `pushed` (or `table_full`,
or `deferred` again with a new time) and the deferral is removed, in that order: a catch-up
that dies in between leaves the deferral, and the next one finds every batch in the cache.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from minio import Minio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from prefect_aws import MinIOCredentials

from blocks.objectstore import MINIO_CREDENTIALS_BLOCK, RESULT_STORAGE
from blocks.pipeline import PipelineBuckets, load_buckets
from flows.export_powerbi import load_destination, push_clean_rows
from flows.powerbi_deferral import (
    Deferral,
    deferral_record_keys,
    fetch_rows,
    read_deferral,
    remove_deferral,
    update_retry_at,
)
from flows.process_object import s3_client
from flows.run_context import current_flow_run_id
from flows.version_lock import take_version_lock, version_lock
from objectstore import store
from objectstore.lease import ObjectStoreLease
from powerbi.push import DEFERRED, PushSummary

#: Report fields that add up over the export and its catch-ups.
SUMMED_FIELDS = ("powerbi_posts", "powerbi_throttled")


@task(name="update-report-after-catch-up", retries=4, retry_delay_seconds=[1, 2, 4, 8], cache_policy=NO_CACHE)
def update_report(
    client: Minio, processed_bucket: str, deferral: Deferral, summary: PushSummary
) -> bool:
    """The version's report with the push's new state; False when the report is another
    version's (a newer upload of the key: its own report is left alone)."""
    report = store.read_report(client, processed_bucket, deferral.report_key)
    if report is None or report.get("source_etag") != deferral.source_etag:
        return False
    fields = summary.as_report()
    for name in SUMMED_FIELDS:
        fields[name] = int(report.get(name) or 0) + int(fields[name] or 0)  # type: ignore[call-overload]
    for stale in ("powerbi_message", "powerbi_retry_at", "powerbi_skipped"):
        report.pop(stale, None)
    report.update(fields)
    report["powerbi_caught_up_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["powerbi_catch_up_flow_run_id"] = current_flow_run_id()
    store.put_json(client, processed_bucket, deferral.report_key, report)
    return True


def push_deferred(
    client: Minio, processed_bucket: str, deferral: Deferral, lease: ObjectStoreLease
) -> str:
    """Push the deferral's rows (lock held); its status after."""
    contract = deferral.contract_as_recorded()
    destination = load_destination(deferral.contract)
    with tempfile.TemporaryDirectory(prefix="ivi-catch-up-") as temp:
        if destination is None:
            summary = PushSummary(
                destination=None,
                skipped_reason=f"no Power BI destination for `{deferral.contract}` any more",
            )
        else:
            rows = fetch_rows(client, processed_bucket, deferral, Path(temp))
            summary = push_clean_rows(
                destination, rows, contract, deferral.present, deferral.version, deferral.rows_at
            )
    lease.check()
    update_report(client, processed_bucket, deferral, summary)
    if summary.status == DEFERRED and summary.retry_at:
        update_retry_at(client, processed_bucket, deferral, summary.retry_at)
    else:
        remove_deferral(client, processed_bucket, deferral)
    get_run_logger().info(
        "%s: Power BI %s (%d rows in, %d POSTs now)",
        deferral.version, summary.status, summary.rows, summary.posts,
    )
    return summary.status


def catch_up(
    client: Minio, buckets: PipelineBuckets, credentials: MinIOCredentials, deferral: Deferral
) -> str:
    """One deferral, under its object version's lock."""
    lease = version_lock(buckets, deferral.object_version, credentials)
    take_version_lock(lease)
    try:
        current = read_deferral(client, buckets.processed_bucket, deferral.record_key())
        if current is None:
            return "already caught up"
        return push_deferred(client, buckets.processed_bucket, current, lease)
    finally:
        lease.release()


@flow(name="powerbi_catch_up", log_prints=False, result_storage=RESULT_STORAGE, persist_result=False)
def powerbi_catch_up(due_only: bool = True) -> State:
    """Push every deferred export whose wait is over (all of them with `due_only=False`)."""
    buckets = load_buckets()
    credentials = MinIOCredentials.load(MINIO_CREDENTIALS_BLOCK)
    client = s3_client(credentials)
    outcomes: Counter[str] = Counter()
    for record_key in list(deferral_record_keys(client, buckets.processed_bucket)):
        deferral = read_deferral(client, buckets.processed_bucket, record_key)
        if deferral is None:
            continue
        if due_only and not deferral.is_due():
            outcomes["not due yet"] += 1
            continue
        outcomes[catch_up(client, buckets, credentials, deferral)] += 1
    said = ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
    return Completed(message=f"Power BI catch-up: {said or 'nothing deferred'}")
