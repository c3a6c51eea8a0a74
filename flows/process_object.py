"""process_object: one object of the raw bucket, from fetch to clean outputs and a report.

    fetch -> validate -> clean -> export-csv ∥ export-powerbi -> write-report

Idempotent per object version: the report in `processed/_reports/` records the eTag it was
made from; a run that finds it ends early (Completed) and writes nothing. Duplicate
deliveries of one event arrive as concurrent runs, so the check is made again under a lock.
"""

from __future__ import annotations

import errno
import socket
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
from minio import Minio
from minio.error import S3Error
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.context import get_run_context
from prefect.locking.filesystem import FileSystemLockManager
from prefect.states import Completed, Crashed, Failed, State
from prefect_aws import MinIOCredentials
from urllib3.exceptions import HTTPError

from flows import store
from flows.artifacts import publish_artifacts
from flows.export_powerbi import export_powerbi
from ivi.settings import Settings
from processing.contract import Contract, ContractError, contract_for_key, load_contract
from processing.errors import FileRejected
from processing.report import Report
from processing.run import map_header, process_file
from processing.source import TextSource

MINIO_CREDENTIALS_BLOCK = "minio-credentials"
LOCK_HOLD_SECONDS = 3600  # a run killed while holding the lock frees it after this
LOCK_POLL_SECONDS = 2.0  # how often a waiting run checks whether the holder has ended
TRANSIENT_S3_ERRORS = (HTTPError, ConnectionError, TimeoutError)


def _retry_on_transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry connection problems and server errors; a missing object will not reappear."""
    try:
        state.result()
    except TRANSIENT_S3_ERRORS:
        return True
    except S3Error as error:
        return error.code not in {"NoSuchKey", "NoSuchBucket", "AccessDenied"}
    except Exception:  # noqa: BLE001
        return False
    return False


def s3_client() -> Minio:
    credentials = MinIOCredentials.load(MINIO_CREDENTIALS_BLOCK)
    endpoint = credentials.aws_client_parameters.endpoint_url or "http://127.0.0.1:9000"
    return store.minio_client(
        str(endpoint),
        credentials.minio_root_user,
        credentials.minio_root_password.get_secret_value(),
        credentials.region_name,
    )


@task(name="fetch", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def fetch(client: Minio, version: store.ObjectVersion, directory: Path) -> Path:
    """Stream the object to a local temporary file."""
    return store.fetch_object(client, version, directory)


@task(name="validate", cache_policy=NO_CACHE)
def validate(path: Path, contract: Contract) -> dict[str, object]:
    """Can the file be a table for this contract at all? (encoding, header, columns)"""
    with TextSource(path) as source:
        assert source.header is not None
        _layout, present, ignored = map_header(source.header, contract)
        return {"encoding": source.encoding, "columns": present, "ignored_columns": ignored}


@task(name="clean", cache_policy=NO_CACHE)
def clean(path: Path, contract: Contract, out_dir: Path, stem: str) -> Report:
    """Row by row: validate against the contract, clean, and write the local outputs."""
    return process_file(path, contract, out_dir, stem=stem)


@task(name="export-csv", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def export_csv(client: Minio, settings: Settings, report: Report, keys: store.OutputKeys) -> dict[str, str]:
    """Upload the clean CSV and JSON, and the quarantined rows when there are any."""
    outputs = {
        "csv": store.put_file(client, settings.processed_bucket, keys.csv, Path(report.outputs["csv"]), "text/csv"),
        "json": store.put_file(
            client, settings.processed_bucket, keys.json, Path(report.outputs["json"]), "application/json"
        ),
    }
    if "rejected" in report.outputs:
        outputs["rejected"] = store.put_file(
            client, settings.quarantine_bucket, keys.rejected, Path(report.outputs["rejected"]), "text/csv"
        )
    return outputs


@task(name="quarantine-original", retries=4, retry_delay_seconds=[1, 2, 4, 8],
      retry_condition_fn=_retry_on_transient, cache_policy=NO_CACHE)
def quarantine_original(client: Minio, settings: Settings, version: store.ObjectVersion) -> str:
    return store.copy_object(client, version, settings.quarantine_bucket, version.key)


@task(name="write-report", retries=4, retry_delay_seconds=[1, 2, 4, 8], retry_condition_fn=_retry_on_transient,
      cache_policy=NO_CACHE)
def write_report(client: Minio, settings: Settings, keys: store.OutputKeys, document: dict[str, object]) -> str:
    """Written last: its presence with this eTag is what makes a later delivery a no-op."""
    return store.put_json(client, settings.processed_bucket, keys.report, document)


def _flow_run_id() -> str:
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - outside a flow run (tests calling .fn)
        return ""


def _already_processed(client: Minio, settings: Settings, keys: store.OutputKeys, etag: str) -> bool:
    report = store.read_report(client, settings.processed_bucket, keys.report)
    return report is not None and report.get("source_etag") == etag


def _lock_holder() -> str:
    """Who takes a version's lock: `<flow run id> <host> <pid> <process start time>`.

    The process is named so that a run whose process died can be told from one still at
    work, and its start time so that a pid the system reuses later is not taken for it.
    """
    me = psutil.Process()
    return f"{_flow_run_id() or 'no-flow-run'} {socket.gethostname()} {me.pid} {me.create_time():.3f}"


def _holder_process_is_gone(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists.

    A holder on another host (a lock directory shared between machines) cannot be checked
    from here, nor a holder string of another form: False, its run's state decides.
    """
    try:
        _run, host, pid, started = holder.split(" ")
        pid_number, start_time = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        process = psutil.Process(pid_number)
        return abs(process.create_time() - start_time) > 0.5 or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _holder_has_ended(holder: str) -> str | None:
    """Why the lock's holder no longer works under it, or None while it may.

    Its flow run is in a final state (Crashed, Failed, Cancelled) or deleted; or its process
    is gone while Prefect still shows the run Running. That happens when the worker died
    with the run, leaving nobody to report the crash (Prefect's own detection needs
    heartbeats, an automation and minutes): the run is then marked Crashed here, where its
    death is certain, so that the UI does not show it running forever.
    """
    gone = _holder_process_is_gone(holder)
    try:
        run_id = UUID(holder.split(" ")[0])
    except ValueError:  # not a flow run (a test calling the flow's function)
        return "its process is gone" if gone else None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(run_id).state
        except ObjectNotFound:
            return "its flow run was deleted"
        if state is not None and state.is_final():
            return f"its flow run is {state.type.value}"
        if not gone:
            return None
        client.set_flow_run_state(
            run_id,
            Crashed(message=f"its process is gone (lock holder {holder}); "
                            f"flow run {_flow_run_id() or '?'} took over its work"),
            force=True,
        )
    return "its process is gone (its flow run is now marked Crashed)"


def _acquire_version_lock(locks: FileSystemLockManager, lock_key: str, holder: str) -> None:
    """Take the object version's lock; take it over from a run that died holding it.

    A run killed half way (SIGKILL, OOM, a lost machine) never releases its lock, and the
    run that resumes its work would otherwise wait out the hold timeout (an hour). Once
    Prefect has the holder's run in a final state (Crashed, Failed, Cancelled), or the
    holder's process is gone from this host, nobody works under the lock any more and it
    is removed.
    """
    deadline = time.monotonic() + LOCK_HOLD_SECONDS
    while not locks.acquire_lock(
        lock_key, holder, acquire_timeout=LOCK_POLL_SECONDS, hold_timeout=LOCK_HOLD_SECONDS
    ):
        info = locks._get_lock_info(lock_key, use_cache=False)  # noqa: SLF001 - no public reader
        if info is not None and (ended := _holder_has_ended(str(info["holder"]))):
            # another waiter may have taken it over meanwhile: remove only the dead holder's
            now = locks._get_lock_info(lock_key, use_cache=False)  # noqa: SLF001
            if now is not None and now["holder"] == info["holder"]:
                get_run_logger().warning("taking over the lock of %s: %s", info["holder"], ended)
                Path(info["path"]).unlink(missing_ok=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"lock {lock_key} still held after {LOCK_HOLD_SECONDS} s")


def _disk_is_full(error: OSError) -> bool:
    """ENOSPC or EDQUOT, as Python raises it, or as polars does (no errno, the text only)."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or f"(os error {errno.ENOSPC})" in str(error)


def _resolve_contract(key: str, contract: str | None) -> Contract:
    name = contract or contract_for_key(key)
    try:
        return load_contract(name)
    except ContractError as error:
        raise FileRejected(
            f"no contract for `{key}`: {error}; put the file under a folder named after its "
            "contract or pass contract="
        ) from None


@flow(name="process_object", log_prints=False)
def process_object(
    bucket: str,
    key: str,
    etag: str | None = None,
    contract: str | None = None,
    force: bool = False,
) -> State:
    """Validate, clean and export one CSV object; the run's state says what happened."""
    logger = get_run_logger()
    settings = Settings()
    started = time.perf_counter()
    client = s3_client()
    keys = store.OutputKeys.for_key(key)
    version = store.find_object(client, bucket, key)
    if version is None:
        return Completed(message=f"s3://{bucket}/{key} no longer exists; nothing to do")
    if etag and etag.strip('"') != version.etag:
        logger.info("event eTag %s is not the object's current %s: processing the current version",
                    etag, version.etag)
    if not force and _already_processed(client, settings, keys, version.etag):
        return Completed(message=f"already processed: s3://{bucket}/{key} at eTag {version.etag}")

    locks = FileSystemLockManager(settings.data_dir / "locks")
    lock_key = f"{bucket}/{key}@{version.etag}".replace("/", "%2F")
    holder = _lock_holder()
    _acquire_version_lock(locks, lock_key, holder)
    try:
        if not force and _already_processed(client, settings, keys, version.etag):
            return Completed(message=f"already processed: s3://{bucket}/{key} at eTag {version.etag}")
        return _process_version(client, settings, version, keys, contract, started)
    finally:
        locks.release_lock(lock_key, holder)


def _process_version(
    client: Minio,
    settings: Settings,
    version: store.ObjectVersion,
    keys: store.OutputKeys,
    contract_name: str | None,
    started: float,
) -> State:
    document: dict[str, object] = {
        "source_bucket": version.bucket,
        "source_key": version.key,
        "source_etag": version.etag,
        "source_size": version.size,
        "flow_run_id": _flow_run_id(),
    }
    with tempfile.TemporaryDirectory(prefix="ivi-") as temp:
        work = Path(temp)
        try:
            contract = _resolve_contract(version.key, contract_name)
            document["contract"] = contract.name
            local = fetch(client, version, work)
            validate(local, contract)
            report = clean(local, contract, work / "out", keys.stem)
        except FileRejected as rejection:
            reason = str(rejection)
            document.update(
                status="rejected",
                reason=reason,
                contract=document.get("contract", contract_name or ""),
                input_rows=0, exported_rows=0, quarantined_rows=0, duplicate_rows=0,
                outputs={"original": quarantine_original(client, settings, version)},
                duration_s=round(time.perf_counter() - started, 3),
            )
            write_report(client, settings, keys, document)
            publish_artifacts(document, None)
            get_run_logger().warning("%s rejected: %s; the original is in s3://%s/%s",
                                     version.key, reason, settings.quarantine_bucket, version.key)
            return Failed(message=f"{version.key} rejected: {reason}")
        except OSError as error:
            if not _disk_is_full(error):
                raise
            message = (
                f"{version.key}: no space left in the temporary directory {work.parent} "
                f"({error}): it needs room for the object ({version.size:,} bytes) and its clean "
                "CSV and JSON, about four times that. Nothing was exported and the original is "
                "untouched: free space (or point TMPDIR at a bigger disk) and run again"
            )
            get_run_logger().error(message)
            return Failed(message=message)
        rejected_local = Path(report.outputs["rejected"]) if "rejected" in report.outputs else None
        csv_future = export_csv.submit(client, settings, report, keys)
        powerbi_future = export_powerbi.submit(
            Path(report.outputs["csv"]), contract, report.columns, f"{version.bucket}/{version.key}@{version.etag}"
        )
        outputs = csv_future.result()
        powerbi = powerbi_future.result()
        body = report.to_dict()
        body.pop("source", None)
        document.update(body)
        document.update(status="processed", outputs=outputs, **powerbi.as_report())
        document["duration_s"] = round(time.perf_counter() - started, 3)
        outputs["report"] = write_report(client, settings, keys, document)
        publish_artifacts(document, rejected_local)
        if report.quarantined_rows:
            get_run_logger().warning("%s: %d of %d rows quarantined, with their reasons in s3://%s/%s",
                                     version.key, report.quarantined_rows, report.input_rows,
                                     settings.quarantine_bucket, keys.rejected)
    return Completed(
        message=(
            f"{version.key}: {report.input_rows} rows -> {report.exported_rows} exported, "
            f"{report.quarantined_rows} quarantined, {report.duplicate_rows} duplicates"
        )
    )
