"""maintain-lake: compact and vacuum every contract's Delta table (the nightly deployment).

Every upload is one commit with a few small files, and every replaced version leaves its old
files behind for readers of older versions; without maintenance a table gathers thousands of
small files that slow every reader (Direct Lake included). `lake/maintenance.py` does the
work; this flow runs it per table, one table per task so that a broken table fails alone.
"""

from __future__ import annotations

from typing import Any

from minio import Minio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_aws import MinIOCredentials

from blocks.objectstore import MINIO_CREDENTIALS_BLOCK
from blocks.pipeline import load_buckets
from flows.export_lake import lake_storage_options
from lake.maintenance import DEFAULT_RETENTION_HOURS, maintain
from flows.process_object import s3_client
from lake.storage import table_uri


@task(name="maintain-table", retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def maintain_table(uri: str, storage_options: dict[str, str], retention_hours: int) -> dict[str, Any]:
    return maintain(uri, storage_options, retention_hours)


def lake_tables(client: Minio, bucket: str) -> list[str]:
    """The tables in the lake bucket: its top-level folders (one per contract that has had a
    file processed, published contracts and contracts since removed included)."""
    return sorted(item.object_name.rstrip("/") for item in client.list_objects(bucket) if item.is_dir)


@flow(name="maintain_lake", log_prints=False)
def maintain_lake(retention_hours: int = DEFAULT_RETENTION_HOURS) -> list[dict[str, Any]]:
    """Compact then vacuum each contract's table; files younger than `retention_hours` stay."""
    buckets = load_buckets()
    credentials = MinIOCredentials.load(MINIO_CREDENTIALS_BLOCK)
    options = lake_storage_options(credentials)
    results = [
        maintain_table(table_uri(buckets.lake_bucket, name), options, retention_hours)
        for name in lake_tables(s3_client(credentials), buckets.lake_bucket)
    ]
    for result in results:
        get_run_logger().info("%s", result)
    return results
