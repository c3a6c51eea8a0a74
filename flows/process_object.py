"""process_object: one object of the raw bucket, from fetch to clean outputs and a report.

    fetch -> validate -> clean -> export-csv ∥ export-powerbi ∥ export-lake -> write-report

Idempotent per object version: the report in `processed/_reports/` records the eTag it was
made from; a run that finds it ends early (Completed) and writes nothing. Duplicate
deliveries of one event arrive as concurrent runs, so the check is made again under a lock.
"""

from __future__ import annotations

import errno
import tempfile
import time
from pathlib import Path

from minio import Minio
from minio.error import S3Error
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect_aws import MinIOCredentials
from urllib3.exceptions import HTTPError

from flows.retries import retry_when
from blocks.loaded_once import load_block
from blocks.objectstore import MINIO_CREDENTIALS_BLOCK, RESULT_STORAGE, store_client
from blocks.pipeline import PipelineBuckets, load_buckets
from objectstore import store
from flows.artifacts import publish_artifacts
from flows.contracts import ResolvedContract, UnknownContract, resolve_contract
from flows.export_lake import export_lake
from flows.export_powerbi import export_powerbi
from flows.powerbi_deferral import record_deferral
from flows.run_context import current_flow_run_id
from flows.version_lock import take_version_lock, version_lock
from objectstore.lease import ObjectStoreLease
from processing.contract import Contract, ContractError, contract_for_key
from processing.errors import FileRejected
from processing.report import Report
from processing.run import map_header, process_file
from processing.source import TextSource
from powerbi.push import DEFERRED, SKIPPED, TABLE_FULL

TRANSIENT_S3_ERRORS = (HTTPError, ConnectionError, TimeoutError)


# Connection problems and server errors; a missing object will not reappear.
_retry_on_transient = retry_when(
    TRANSIENT_S3_ERRORS,
    also=lambda error: isinstance(error, S3Error) and error.code not in {"NoSuchKey", "NoSuchBucket", "AccessDenied"},
)


def s3_client(credentials: MinIOCredentials | None = None) -> Minio:
    return store_client(credentials or load_block(MinIOCredentials, MINIO_CREDENTIALS_BLOCK))


@task(name="fetch", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def fetch(client: Minio, version: store.ObjectVersion, directory: Path) -> Path:
    """Stream the object to a local temporary file."""
    return store.fetch_object(client, version, directory)


@task(name="validate", cache_policy=NO_CACHE)
def validate(path: Path, contract: Contract) -> dict[str, object]:
    """Can the file be a table for this contract at all? (encoding, header, columns)"""
    with TextSource(path) as source:
        _layout, present, ignored = map_header(source.require_header(), contract)
        return {"encoding": source.encoding, "columns": present, "ignored_columns": ignored}


@task(name="clean", cache_policy=NO_CACHE)
def clean(path: Path, contract: Contract, out_dir: Path) -> Report:
    """Row by row: validate against the contract, clean, and write the local outputs (named
    after the fetched file; only the names in the store must be unique), the clean rows also
    as Arrow for export-lake (`outputs["arrow"]`: it reads them back without parsing)."""
    return process_file(path, contract, out_dir, arrow=True)


@task(name="export-csv", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def export_csv(client: Minio, buckets: PipelineBuckets, report: Report, keys: store.OutputKeys) -> dict[str, str]:
    """Upload the clean CSV and JSON, and the quarantined rows when there are any."""
    outputs = {
        "csv": store.put_file(client, buckets.processed_bucket, keys.csv, Path(report.outputs["csv"]), "text/csv"),
        "json": store.put_file(
            client, buckets.processed_bucket, keys.json, Path(report.outputs["json"]), "application/json"
        ),
    }
    if "rejected" in report.outputs:
        outputs["rejected"] = store.put_file(
            client, buckets.quarantine_bucket, keys.rejected, Path(report.outputs["rejected"]), "text/csv"
        )
    return outputs


@task(name="quarantine-original", retries=4, retry_delay_seconds=[1, 2, 4, 8],
      retry_condition_fn=_retry_on_transient, cache_policy=NO_CACHE)
def quarantine_original(client: Minio, buckets: PipelineBuckets, version: store.ObjectVersion) -> str:
    return store.copy_object(
        client, version, buckets.quarantine_bucket, store.OutputKeys.for_key(version.key).original
    )


@task(name="write-report", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def write_report(client: Minio, buckets: PipelineBuckets, keys: store.OutputKeys, document: dict[str, object]) -> str:
    """Written last: its presence with this eTag is what makes a later delivery a no-op."""
    return store.put_json(client, buckets.processed_bucket, keys.report, document)


def _already_processed(client: Minio, buckets: PipelineBuckets, keys: store.OutputKeys, etag: str) -> bool:
    report = store.read_report(client, buckets.processed_bucket, keys.report)
    return report is not None and report.get("source_etag") == etag


def _disk_is_full(error: OSError) -> bool:
    """ENOSPC or EDQUOT, as Python raises it, or as polars does (no errno, the text only)."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or f"(os error {errno.ENOSPC})" in str(error)


def _resolve_contract(
    client: Minio, buckets: PipelineBuckets, key: str, contract: str | None
) -> ResolvedContract:
    """The published contract of the key's folder (or `contract=`), else the image's file."""
    name = contract or contract_for_key(key)
    try:
        return resolve_contract(client, buckets, name)
    except UnknownContract as error:
        raise FileRejected(
            f"no contract for `{key}`: {error}; put the file under a folder named after its "
            "contract or pass contract="
        ) from None
    except ContractError as error:  # a contract file the parser refuses (put in place by hand)
        raise FileRejected(
            f"the contract for `{key}` is not valid: {error}; fix it and publish it with "
            "`ivi contract publish`"
        ) from None


@flow(name="process_object", log_prints=False, result_storage=RESULT_STORAGE, persist_result=False)
def process_object(
    bucket: str,
    key: str,
    etag: str | None = None,
    contract: str | None = None,
    force: bool = False,
) -> State:
    """Validate, clean and export one CSV object; the run's state says what happened."""
    logger = get_run_logger()
    buckets = load_buckets()
    started = time.perf_counter()
    credentials = load_block(MinIOCredentials, MINIO_CREDENTIALS_BLOCK)
    client = s3_client(credentials)
    keys = store.OutputKeys.for_key(key)
    version = store.find_object(client, bucket, key)
    if version is None:
        return Completed(message=f"s3://{bucket}/{key} no longer exists; nothing to do")
    if etag and etag.strip('"') != version.etag:
        logger.info("event eTag %s is not the object's current %s: processing the current version",
                    etag, version.etag)
    if not force and _already_processed(client, buckets, keys, version.etag):
        return Completed(message=f"already processed: s3://{bucket}/{key} at eTag {version.etag}")

    lease = version_lock(buckets, version, credentials)
    take_version_lock(lease)
    try:
        if not force and _already_processed(client, buckets, keys, version.etag):
            return Completed(message=f"already processed: s3://{bucket}/{key} at eTag {version.etag}")
        return _process_version(client, buckets, credentials, version, keys, contract, started, lease)
    finally:
        lease.release()


def _process_version(
    client: Minio,
    buckets: PipelineBuckets,
    credentials: MinIOCredentials,
    version: store.ObjectVersion,
    keys: store.OutputKeys,
    contract_name: str | None,
    started: float,
    lease: ObjectStoreLease,
) -> State:
    document: dict[str, object] = {
        "source_bucket": version.bucket,
        "source_key": version.key,
        "source_etag": version.etag,
        "source_size": version.size,
        "flow_run_id": current_flow_run_id(),
    }
    with tempfile.TemporaryDirectory(prefix="ivi-") as temp:
        work = Path(temp)
        try:
            resolved = _resolve_contract(client, buckets, version.key, contract_name)
            contract = resolved.contract
            document["contract"] = contract.name
            document.update(resolved.as_report())
            local = fetch(client, version, work)
            validate(local, contract)
            report = clean(local, contract, work / "out")
        except FileRejected as rejection:
            reason = str(rejection)
            document.update(
                status="rejected",
                reason=reason,
                contract=document.get("contract", contract_name or ""),
                input_rows=0, exported_rows=0, quarantined_rows=0, duplicate_rows=0,
                powerbi=SKIPPED, powerbi_skipped="the file is rejected as a whole",
                outputs={"original": quarantine_original(client, buckets, version)},
                duration_s=round(time.perf_counter() - started, 3),
            )
            lease.check()
            write_report(client, buckets, keys, document)
            publish_artifacts(document, None, pii_columns=())
            get_run_logger().warning("%s rejected: %s; the original is in s3://%s/%s",
                                     version.key, reason, buckets.quarantine_bucket, keys.original)
            return Failed(message=f"{version.key} rejected: {reason}")
        except OSError as error:
            if not _disk_is_full(error):
                raise
            message = (
                f"{version.key}: no space left in the temporary directory {work.parent} "
                f"({error}): it needs room for the object ({version.size:,} bytes) and its clean "
                "CSV, JSON and Arrow files, about five times that. Nothing was exported and the "
                "original is untouched: free space (or point TMPDIR at a bigger disk) and run again"
            )
            get_run_logger().error(message)
            return Failed(message=message)
        rejected_local = Path(report.outputs["rejected"]) if "rejected" in report.outputs else None
        lease.check()
        csv_future = export_csv.submit(client, buckets, report, keys)
        powerbi_future = export_powerbi.submit(
            Path(report.outputs["csv"]), contract, report.columns, f"{version.bucket}/{version.key}@{version.etag}",
            f"s3://{buckets.processed_bucket}/{keys.csv}",
        )
        lake_future = export_lake.submit(
            client, buckets, credentials, Path(report.outputs["arrow"]), contract, version, report.exported_rows,
        )
        outputs = csv_future.result()
        powerbi = powerbi_future.result()
        lake = lake_future.result()
        if powerbi.status == DEFERRED and powerbi.retry_at:  # kept before the report says so
            record_deferral(client, buckets.processed_bucket, version, contract, report.columns,
                            Path(report.outputs["csv"]), keys, powerbi.retry_at)
        if powerbi.status in (DEFERRED, TABLE_FULL):
            get_run_logger().warning("%s: Power BI %s: %s", version.key, powerbi.status, powerbi.message)
        body = report.to_dict()
        body.pop("source", None)
        document.update(body)
        document.update(status="processed", outputs=outputs, **powerbi.as_report(), **lake.as_report())
        document["duration_s"] = round(time.perf_counter() - started, 3)
        lease.check()
        outputs["report"] = write_report(client, buckets, keys, document)
        publish_artifacts(document, rejected_local, pii_columns=contract.pii_columns)
        if report.quarantined_rows:
            get_run_logger().warning("%s: %d of %d rows quarantined, with their reasons in s3://%s/%s",
                                     version.key, report.quarantined_rows, report.input_rows,
                                     buckets.quarantine_bucket, keys.rejected)
    return Completed(
        message=(
            f"{version.key}: {report.input_rows} rows -> {report.exported_rows} exported, "
            f"{report.quarantined_rows} quarantined, {report.duplicate_rows} duplicates"
        )
    )
