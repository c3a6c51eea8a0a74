"""backfill: process every CSV under a prefix that is not yet processed at its current eTag.

Also the `reconcile` deployment's flow: run on a schedule over the whole raw bucket, it is
what makes the pipeline complete when a store event was lost (SeaweedFS keeps none when the
relay is down; MinIO without a queue_dir drops failed deliveries).
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment

from flows import store
from flows.process_object import s3_client
from ivi.settings import Settings

PROCESS_OBJECT_DEPLOYMENT = "process_object/process-object"


@task(name="list-unprocessed", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def list_unprocessed(bucket: str, prefix: str, force: bool) -> list[store.ObjectVersion]:
    """CSV objects under the prefix whose report does not hold their current eTag."""
    client = s3_client()
    processed_bucket = Settings().processed_bucket
    pending = []
    for version in store.list_csv_objects(client, bucket, prefix):
        if not force:
            report = store.read_report(client, processed_bucket, store.OutputKeys.for_key(version.key).report)
            if report is not None and report.get("source_etag") == version.etag:
                continue
        pending.append(version)
    return pending


@flow(name="backfill", log_prints=False)
def backfill(bucket: str = "raw", prefix: str = "", force: bool = False) -> list[str]:
    """Start one process_object run per pending object; returns the keys it started."""
    logger = get_run_logger()
    started = []
    for version in list_unprocessed(bucket, prefix, force):
        # one run per object version, even if backfill and the event path race for it
        idempotency_key = f"{bucket}/{version.key}@{version.etag}"
        if force:
            idempotency_key += f"#force-{time.time_ns()}"
        run_deployment(
            PROCESS_OBJECT_DEPLOYMENT,
            parameters={"bucket": bucket, "key": version.key, "etag": version.etag, "force": force},
            idempotency_key=idempotency_key,
            timeout=0,
            as_subflow=False,
        )
        started.append(version.key)
    logger.info("started %d process_object run(s) under s3://%s/%s", len(started), bucket, prefix)
    return started
