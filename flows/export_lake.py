"""export-lake: the clean rows of one object version into its contract's Delta table.

The durable export (issue 15): `s3://<lake bucket>/<contract>` holds exactly the latest
processed version of each raw object (the rules are in `lake/table.py`). This task streams the
clean rows a batch at a time into the table's data files, from the Arrow IPC stream the `clean`
task wrote beside the clean CSV (`lake/source.py`, `lake/data_files.py`: no parsing, and
memory stays bounded whatever the file's size). A commit that lost its
table version to another is planned again inside `replace_source`, asking the store again
whether this version is still the object's current one, so a newer upload's rows are never
replaced by an older one's; a table that kept moving (`CommitFailedError`) and a store that
did not answer are retried here.
"""

from __future__ import annotations

from pathlib import Path

from deltalake.exceptions import CommitFailedError
from minio import Minio
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect_aws import MinIOCredentials
from urllib3.exceptions import HTTPError

from flows.retries import retry_when
from blocks.pipeline import PipelineBuckets
from lake.schema import LakeColumn
from lake.source import arrow_batches
from lake.storage import s3_storage_options, table_uri
from lake.table import LakeTarget, LakeWrite, SourceVersion, replace_source
from objectstore import store
from processing.contract import Contract


def lake_storage_options(credentials: MinIOCredentials) -> dict[str, str]:
    """delta-rs' storage options from the `minio-credentials` block the flows load."""
    endpoint = str(credentials.aws_client_parameters.endpoint_url or "http://127.0.0.1:9000")
    return s3_storage_options(
        endpoint,
        credentials.minio_root_user,
        credentials.minio_root_password.get_secret_value(),
        credentials.region_name or "us-east-1",
    )


def lake_columns(contract: Contract) -> list[LakeColumn]:
    """The contract's columns as the lake core takes them."""
    return [LakeColumn(spec.name, spec.type, utc=spec.type == "datetime" and bool(spec.timezone))
            for spec in contract.columns]


def lake_target(buckets: PipelineBuckets, contract: Contract, credentials: MinIOCredentials) -> LakeTarget:
    return LakeTarget(
        table_uri(buckets.lake_bucket, contract.name), contract.name, lake_columns(contract),
        lake_storage_options(credentials),
    )


# A commit that lost to a concurrent one, and a store that did not answer (delta-rs' object
# store errors are OSErrors that say so); a schema the table cannot take is final.
_retry_on_conflict = retry_when(
    (CommitFailedError, HTTPError, ConnectionError, TimeoutError),
    also=lambda error: isinstance(error, OSError) and "connect" in str(error).lower(),
)


@task(name="export-lake", retries=6, retry_delay_seconds=[0.5, 1, 2, 4, 8, 8],
      retry_condition_fn=_retry_on_conflict, cache_policy=NO_CACHE)
def export_lake(
    client: Minio,
    buckets: PipelineBuckets,
    credentials: MinIOCredentials,
    clean_rows: Path,
    contract: Contract,
    version: store.ObjectVersion,
    exported_rows: int,
) -> LakeWrite:
    """Replace the object's rows in the table with this version's clean rows (one commit).
    `clean_rows` is the Arrow IPC stream of the clean rows (`report.outputs["arrow"]`)."""

    def still_current() -> bool:
        current = store.find_object(client, version.bucket, version.key)
        return current is not None and current.etag == version.etag

    target = lake_target(buckets, contract, credentials)
    return replace_source(
        target,
        arrow_batches(clean_rows),
        SourceVersion(version.key, version.etag),
        expected_rows=exported_rows,
        still_current=still_current,
    )
