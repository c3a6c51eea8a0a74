"""Deferred Power BI pushes, kept in the object store until the catch-up has pushed them.

A push the service throttled for long (`powerbi: deferred` in the report) leaves a deferral:
a JSON record and a copy of the clean rows under `_ivi/powerbi-deferred/` in the processed
bucket, both named by a digest of the object version (`bucket/key@eTag`). The copy, not the
clean CSV at its public name: a newer upload of the same key overwrites that one, and the old
version's remaining batches must still go out, exactly as they were cut. The record also holds
the columns the rows were read with, so that the catch-up cuts the same batches (and finds
the accepted ones in the cache) even if the contract changed meanwhile.

The record is written before the run's report, so that a report saying `deferred` always has
its deferral; the copy before the record, so that a record always has its rows. The catch-up
removes the record once the report says `pushed` (or `table_full`), the copy last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from minio import Minio
from minio.error import S3Error
from prefect import task
from prefect.cache_policies import NO_CACHE

from objectstore import store
from processing.contract import ColumnSpec, Contract

DEFERRED_PREFIX = "_ivi/powerbi-deferred/"


@dataclass(frozen=True)
class Deferral:
    """One object version whose push waits for the catch-up."""

    source_bucket: str
    source_key: str
    source_etag: str
    source_size: int
    contract: str
    powerbi_table: str
    columns: list[dict[str, str | None]]  # name, type, timezone: what the rows are read with
    rows_key: str  # the copy of the clean CSV, in the processed bucket
    report_key: str
    rows_at: str  # the clean CSV's public address, for the report's words
    retry_at: str  # ISO time, UTC: not before this
    deferred_at: str

    @property
    def version(self) -> str:
        """The version string the batch cache and the version lock are keyed by."""
        return version_string(self.source_bucket, self.source_key, self.source_etag)

    @property
    def object_version(self) -> store.ObjectVersion:
        return store.ObjectVersion(self.source_bucket, self.source_key, self.source_etag, self.source_size)

    @property
    def present(self) -> list[str]:
        return [str(column["name"]) for column in self.columns]

    def contract_as_recorded(self) -> Contract:
        """The contract as far as reading the rows back needs it (names, types, zones)."""
        specs = tuple(
            ColumnSpec(name=str(c["name"]), type=c["type"], timezone=c.get("timezone"))  # type: ignore[arg-type]
            for c in self.columns
        )
        return Contract(name=self.contract, columns=specs, powerbi_table=self.powerbi_table)

    def is_due(self, now: datetime | None = None) -> bool:
        return datetime.fromisoformat(self.retry_at) <= (now or datetime.now(UTC))

    def record_key(self) -> str:
        return deferral_keys(self.version)[0]


def version_string(bucket: str, key: str, etag: str) -> str:
    return f"{bucket}/{key}@{etag}"


def deferral_keys(version: str) -> tuple[str, str]:
    """(record key, rows key) of one object version: a digest, so any key fits."""
    digest = hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{DEFERRED_PREFIX}{digest}.json", f"{DEFERRED_PREFIX}{digest}.csv"


def recorded_columns(contract: Contract, present: list[str]) -> list[dict[str, str | None]]:
    return [
        {"name": spec.name, "type": spec.type, "timezone": spec.timezone}
        for spec in contract.columns
        if spec.name in present
    ]


@task(name="record-powerbi-deferral", retries=4, retry_delay_seconds=[1, 2, 4, 8], cache_policy=NO_CACHE)
def record_deferral(
    client: Minio,
    processed_bucket: str,
    version: store.ObjectVersion,
    contract: Contract,
    present: list[str],
    clean_csv: Path,
    keys: store.OutputKeys,
    retry_at: str,
) -> str:
    """Keep the rows and the record of a deferred push (the rows first)."""
    record_key, rows_key = deferral_keys(version_string(version.bucket, version.key, version.etag))
    store.put_file(client, processed_bucket, rows_key, clean_csv, "text/csv")
    deferral = Deferral(
        source_bucket=version.bucket,
        source_key=version.key,
        source_etag=version.etag,
        source_size=version.size,
        contract=contract.name,
        powerbi_table=contract.powerbi_table or "",
        columns=recorded_columns(contract, present),
        rows_key=rows_key,
        report_key=keys.report,
        rows_at=f"s3://{processed_bucket}/{keys.csv}",
        retry_at=retry_at,
        deferred_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return store.put_json(client, processed_bucket, record_key, asdict(deferral))


def deferral_record_keys(client: Minio, processed_bucket: str) -> Iterator[str]:
    for item in client.list_objects(processed_bucket, prefix=DEFERRED_PREFIX, recursive=True):
        if item.object_name and item.object_name.endswith(".json"):
            yield item.object_name


def read_deferral(client: Minio, processed_bucket: str, record_key: str) -> Deferral | None:
    """The record, or None when it is gone (another catch-up finished it) or unreadable."""
    fields = store.read_report(client, processed_bucket, record_key)
    if fields is None:
        return None
    try:
        return Deferral(**fields)  # type: ignore[arg-type]
    except TypeError:
        return None


def update_retry_at(client: Minio, processed_bucket: str, deferral: Deferral, retry_at: str) -> None:
    fields = asdict(deferral) | {"retry_at": retry_at}
    store.put_json(client, processed_bucket, deferral.record_key(), fields)


def remove_deferral(client: Minio, processed_bucket: str, deferral: Deferral) -> None:
    """The record first (no record: nothing to catch up), then the rows."""
    for key in (deferral.record_key(), deferral.rows_key):
        try:
            client.remove_object(processed_bucket, key)
        except S3Error as error:
            if error.code not in store.NO_OBJECT:
                raise


def fetch_rows(client: Minio, processed_bucket: str, deferral: Deferral, directory: Path) -> Path:
    target = directory / "deferred.csv"
    client.fget_object(processed_bucket, deferral.rows_key, str(target))
    return target

