"""The object store as the flows use it: plain functions over a `minio` client.

No Prefect here, so each function can be called and tested against a real S3 server on its
own; the flows wrap them in tasks (retries, names in the UI).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.error import S3Error

from objectstore.output_names import REPORTS_PREFIX, output_name, rejected_file_name

# What S3 servers answer for a key that holds no object (MinIO says NoSuchKey, SeaweedFS
# NoSuchKey or NoSuchObject, depending on the call).
NO_OBJECT = frozenset({"NoSuchKey", "NoSuchObject"})


def minio_client(endpoint_url: str, access_key: str, secret_key: str, region: str | None = None) -> Minio:
    """A client for `http(s)://host:port`, the form blocks and settings hold endpoints in."""
    parsed = urlparse(endpoint_url)
    return Minio(
        parsed.netloc or parsed.path,
        access_key=access_key,
        secret_key=secret_key,
        secure=parsed.scheme == "https",
        region=region,
    )


@dataclass(frozen=True)
class ObjectVersion:
    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class OutputKeys:
    """Where the outputs of `raw/<key>` go, in other buckets (objectstore/output_names.py)."""

    key: str

    @classmethod
    def for_key(cls, key: str) -> OutputKeys:
        return cls(key=key)

    @property
    def csv(self) -> str:
        return output_name(self.key, ".csv")

    @property
    def json(self) -> str:
        return output_name(self.key, ".json")

    @property
    def rejected(self) -> str:
        return output_name(self.key, ".rejected.csv")

    @property
    def original(self) -> str:
        """A file rejected as a whole, copied byte for byte (output_names.rejected_file_name)."""
        return rejected_file_name(self.key)

    @property
    def report(self) -> str:
        return output_name(self.key, ".json", REPORTS_PREFIX)


def stat_object(client: Minio, bucket: str, key: str) -> ObjectVersion:
    stat = client.stat_object(bucket, key)
    return ObjectVersion(bucket=bucket, key=key, etag=(stat.etag or "").strip('"'), size=stat.size or 0)


def find_object(client: Minio, bucket: str, key: str) -> ObjectVersion | None:
    """`stat_object`, or None when the object does not exist (a missing bucket is an error)."""
    try:
        return stat_object(client, bucket, key)
    except S3Error as error:
        if error.code in NO_OBJECT:
            return None
        raise


@dataclass(frozen=True)
class StoredObject:
    """A small object read whole: its bytes and the eTag they were read at."""

    data: bytes
    etag: str


def read_object(client: Minio, bucket: str, key: str, *, missing_bucket_is_none: bool = False) -> StoredObject | None:
    """The object's bytes and eTag in one GET, or None when there is no such object (and, with
    `missing_bucket_is_none`, no such bucket; otherwise that is an error). For small objects
    only: reports, contracts, lock records."""
    absent = NO_OBJECT | {"NoSuchBucket"} if missing_bucket_is_none else NO_OBJECT
    try:
        response = client.get_object(bucket, key)
    except S3Error as error:
        if error.code in absent:
            return None
        raise
    try:
        return StoredObject(response.read(), (response.headers.get("ETag") or "").strip('"'))
    finally:
        response.close()
        response.release_conn()


def fetch_object(client: Minio, version: ObjectVersion, directory: Path) -> Path:
    """Stream the object to `directory/object` (never held in memory whole).

    A fixed local name: a key's last segment may be as long as the file system allows, and
    the client downloads to `<name>.<eTag>.part.minio` first (the reader tells gzip by its
    first bytes, not by the name).
    """
    target = directory / "object"
    client.fget_object(version.bucket, version.key, str(target))
    return target


def read_report(client: Minio, bucket: str, key: str) -> dict[str, object] | None:
    """The report of an earlier run, or None when there is none (or it is unreadable)."""
    stored = read_object(client, bucket, key, missing_bucket_is_none=True)
    if stored is None:
        return None
    try:
        report = json.loads(stored.data)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def put_file(
    client: Minio, bucket: str, key: str, path: Path, content_type: str,
    metadata: dict[str, str] | None = None,
) -> str:
    client.fput_object(bucket, key, str(path), content_type=content_type, metadata=metadata)  # type: ignore[arg-type]
    return f"s3://{bucket}/{key}"


def put_json(client: Minio, bucket: str, key: str, document: dict[str, object]) -> str:
    data = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    client.put_object(bucket, key, io.BytesIO(data), len(data), content_type="application/json")
    return f"s3://{bucket}/{key}"


def copy_object(
    client: Minio, source: ObjectVersion, bucket: str, key: str,
    metadata: dict[str, str] | None = None,
) -> str:
    """Server-side copy, byte for byte; `metadata` replaces the source's user metadata."""
    if metadata is None:
        client.copy_object(bucket, key, CopySource(source.bucket, source.key))
    else:
        client.copy_object(
            bucket, key, CopySource(source.bucket, source.key),
            metadata=metadata, metadata_directive=REPLACE,  # type: ignore[arg-type]
        )
    return f"s3://{bucket}/{key}"


def list_csv_objects(client: Minio, bucket: str, prefix: str = "") -> list[ObjectVersion]:
    return [
        ObjectVersion(bucket=bucket, key=o.object_name, etag=(o.etag or "").strip('"'), size=o.size or 0)
        for o in client.list_objects(bucket, prefix=prefix or None, recursive=True)
        if o.object_name and o.object_name.lower().endswith(".csv") and not o.is_dir
    ]
