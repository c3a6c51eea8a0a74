"""Helpers for end-to-end tests of the pipeline on the running stack (over real connections)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from minio import Minio

from objectstore.lease import LockRecord, lock_object_key
from objectstore.store import OutputKeys, minio_client, read_report
from ivi.settings import Settings
from tests.stack_support import prefect_request

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def s3(settings: Settings) -> Minio:
    return minio_client(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value()
    )


def upload(settings: Settings, key: str, data: bytes) -> str:
    """Put an object into the raw bucket; returns its eTag."""
    result = s3(settings).put_object(settings.raw_bucket, key, io.BytesIO(data), len(data))
    return str(result.etag).strip('"')


def wait_for_report(
    settings: Settings, key: str, etag: str | None = None, timeout: float = 90.0
) -> dict[str, Any]:
    """The report of `key` (at `etag`, when given), as soon as the pipeline has written it."""
    deadline = time.monotonic() + timeout
    report_key = OutputKeys.for_key(key).report
    while time.monotonic() < deadline:
        report = read_report(s3(settings), settings.processed_bucket, report_key)
        if report is not None and (etag is None or report.get("source_etag") == etag):
            return report
        time.sleep(0.25)
    raise AssertionError(f"no report for {key} at {etag} after {timeout} s")


def read_object(settings: Settings, bucket: str, key: str) -> bytes:
    response = s3(settings).get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def flow_runs_for_key(settings: Settings, key: str) -> list[dict[str, Any]]:
    """Every process_object run whose `key` parameter is `key`."""
    response = prefect_request(
        "POST",
        f"{settings.prefect_api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["process_object"]}}, "limit": 200, "sort": "EXPECTED_START_TIME_DESC"},
    )
    return [run for run in response.json() if run["parameters"].get("key") == key]


def lock_holder_run_id(settings: Settings, key: str, etag: str) -> str:
    """The flow run that holds the version lock of `key` at `etag` now.

    Not "the key's only run": the reconcile's schedule (every 5 minutes) may have started a
    second run of the same version, which waits for the lock, Running too.
    """
    resource = f"{settings.raw_bucket}/{key}@{etag}"
    record = LockRecord.decode(read_object(settings, settings.processed_bucket, lock_object_key(resource)))
    assert record is not None and not record.released, f"no live lock on {resource}: {record}"
    return record.holder.split(" ")[0]


def wait_for_runs_to_finish(
    settings: Settings, key: str, at_least: int = 1, timeout: float = 90.0, settle: float = 3.0
) -> list[dict[str, Any]]:
    """The key's runs once at least `at_least` exist, all are final and none came for `settle` s."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    last_count = -1
    while time.monotonic() < deadline:
        runs = flow_runs_for_key(settings, key)
        done = len(runs) >= at_least and all(r["state_type"] in FINAL_STATES for r in runs)
        if done and len(runs) == last_count:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return runs
        else:
            quiet_since = None
        last_count = len(runs)
        time.sleep(0.5)
    raise AssertionError(f"runs for {key} not finished: {[(r['name'], r['state_type']) for r in runs]}")


def runs_that_processed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that did the work, as opposed to those that found it done (idempotent no-ops)."""
    return [r for r in runs if "already processed" not in (r["state"] or {}).get("message", "")]


def minio_event(settings: Settings, key_encoded: str, etag: str, size: int | None) -> dict[str, Any]:
    """A body as MinIO's webhook target posts it for one created object."""
    obj: dict[str, Any] = {"key": key_encoded, "eTag": etag, "sequencer": "17A"}
    if size is not None:
        obj["size"] = size
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{settings.raw_bucket}/{key_encoded}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": settings.raw_bucket}, "object": obj},
            }
        ],
    }


def artifacts_with_key(settings: Settings, key: str) -> list[dict[str, Any]]:
    response = prefect_request(
        "POST",
        f"{settings.prefect_api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [key]}}},
    )
    return list(response.json())


def run_deployment_now(settings: Settings, name: str, parameters: dict[str, Any] | None = None) -> str:
    response = prefect_request("GET", f"{settings.prefect_api_url}/deployments/name/{name}")
    created = prefect_request(
        "POST",
        f"{settings.prefect_api_url}/deployments/{response.json()['id']}/create_flow_run",
        json={"parameters": parameters or {}},
    )
    return str(created.json()["id"])


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
