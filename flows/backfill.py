"""backfill: process every CSV under a prefix that is not yet processed at its current eTag.

Also the `reconcile` deployment's flow: run on a schedule over the whole raw bucket, it is
what makes the pipeline complete when a store event was lost (SeaweedFS keeps none when the
relay is down; MinIO without a queue_dir drops failed deliveries).

Under load many objects are not processed yet only because their run is still waiting for
the pool: an object whose process_object run is Scheduled is left to that run, so a reconcile
that fires in the middle of a burst does not double the queue with no-op runs. Only Scheduled:
any worker of the pool will start such a run, whereas a Pending or Running one may belong to a
worker or process that died (nobody then tells Prefect), and its object must be run again.

A burst's group (a process_objects run, flows/process_objects.py) takes its objects one after
the other, so most of them have no run of their own yet while the group is Pending or Running.
Such a group keeps its objects for GROUP_KEEPS_ITS_OBJECTS from its expected start: long enough
for a group of small files (measured in seconds), short enough that the objects of a group
whose process died unannounced are run again at a later reconcile. A group still alive then
holds the version lock of the object it works on: the new run waits and finds it done.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment

from blocks.objectstore import RESULT_STORAGE
from blocks.pipeline import load_buckets
from objectstore import store
from flows.process_object import s3_client
from flows.run_context import current_flow_run_id

PROCESS_OBJECT_DEPLOYMENT = "process_object/process-object"
PROCESS_OBJECTS_DEPLOYMENT = "process_objects/process-objects"
PROCESS_OBJECT_FLOW = "process_object"
PROCESS_OBJECTS_FLOW = "process_objects"  # a burst's group (flows/process_objects.py)
PAGE = 200
GROUP_KEEPS_ITS_OBJECTS = timedelta(minutes=10)


@task(name="list-unprocessed", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def list_unprocessed(bucket: str, prefix: str, force: bool) -> list[store.ObjectVersion]:
    """CSV objects under the prefix whose report does not hold their current eTag."""
    client = s3_client()
    processed_bucket = load_buckets().processed_bucket
    pending = []
    for version in store.list_csv_objects(client, bucket, prefix):
        if not force:
            report = store.read_report(client, processed_bucket, store.OutputKeys.for_key(version.key).report)
            if report is not None and report.get("source_etag") == version.etag:
                continue
        pending.append(version)
    return pending


def _objects_of(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a run's parameters name: one for process_object, a group's for
    process_objects; none for a forced run (it is not waiting for a version to be done)."""
    if parameters.get("force"):
        return []
    if "objects" in parameters:
        return [ref for ref in parameters.get("objects") or [] if isinstance(ref, dict)]
    return [parameters]


def scheduled_runs(bucket: str) -> set[tuple[str, str]]:
    """(key, eTag) of every object of `bucket` whose process_object or process_objects run is
    waiting to start, or whose group started less than GROUP_KEEPS_ITS_OBJECTS ago; eTag ""
    for a run created without one (it processes whatever version is current then)."""
    waiting = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    recent_groups = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])),
        expected_start_time=FlowRunFilterExpectedStartTime(after_=datetime.now(UTC) - GROUP_KEEPS_ITS_OBJECTS),
    )
    found: set[tuple[str, str]] = set()
    for flows, runs in (([PROCESS_OBJECT_FLOW, PROCESS_OBJECTS_FLOW], waiting), ([PROCESS_OBJECTS_FLOW], recent_groups)):
        for run in _all_flow_runs(flows, runs):
            for ref in _objects_of(run.parameters or {}):
                if ref.get("bucket") == bucket:
                    found.add((str(ref.get("key")), str(ref.get("etag") or "").strip('"')))
    return found


def _all_flow_runs(flows: list[str], runs: FlowRunFilter) -> list[FlowRun]:
    """Every run of these flows the filter selects, page by page."""
    found: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flows)), flow_run_filter=runs,
                limit=PAGE, offset=len(found),
            )
            found.extend(page)
            if len(page) < PAGE:
                return found


@task(name="list-scheduled", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def list_scheduled(bucket: str) -> set[tuple[str, str]]:
    return scheduled_runs(bucket)


def has_a_run(version: store.ObjectVersion, scheduled: set[tuple[str, str]]) -> bool:
    return (version.key, version.etag) in scheduled or (version.key, "") in scheduled


@flow(name="backfill", log_prints=False, result_storage=RESULT_STORAGE, persist_result=False)
def backfill(bucket: str = "raw", prefix: str = "", force: bool = False) -> list[str]:
    """Start one process_object run per pending object; returns the keys it started.

    An object whose run could not be created (the API kept failing) does not stop the
    others; the flow fails at the end, naming them, and the next reconcile tries again.
    """
    logger = get_run_logger()
    this_run = current_flow_run_id("local")
    pending = list_unprocessed(bucket, prefix, force)
    scheduled = set() if force else list_scheduled(bucket)
    started, left_to_their_run, failed = [], 0, []
    for version in pending:
        if has_a_run(version, scheduled):
            left_to_their_run += 1
            continue
        # One run per object version and backfill run (a retried backfill starts none twice).
        # Not one per version for good: Prefect answers a known key with the run it made the
        # first time, even a Crashed one, and the version would never be run again.
        idempotency_key = f"{bucket}/{version.key}@{version.etag}#{this_run}"
        if force:
            idempotency_key += f"#force-{time.time_ns()}"
        try:
            run_deployment(
                PROCESS_OBJECT_DEPLOYMENT,
                parameters={"bucket": bucket, "key": version.key, "etag": version.etag, "force": force},
                idempotency_key=idempotency_key,
                timeout=0,
                as_subflow=False,
            )
        except Exception as error:  # noqa: BLE001 - one object's failure must not stop the rest
            logger.warning("could not start a run for s3://%s/%s: %s", bucket, version.key, error)
            failed.append(version.key)
            continue
        started.append(version.key)
    logger.info(
        "started %d process_object run(s) under s3://%s/%s; %d object(s) left to the run scheduled for them",
        len(started), bucket, prefix, left_to_their_run,
    )
    if failed:
        raise RuntimeError(f"no run could be started for {len(failed)} object(s): {failed[:10]}")
    return started
