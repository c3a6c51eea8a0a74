"""Contracts published to the object store: `<bucket>/<prefix><name>.toml`, as text.

`ivi contract publish` puts a contract here and every worker reads it from here at the start
of each run, so a new dataset goes live in Compose and Kubernetes without a new image: the
workers share the store. Only bytes and eTags here; parsing is the processing core's
(`processing.contract.parse_contract_text`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from minio import Minio

from objectstore.store import read_object

CONTRACT_SUFFIX = ".toml"
CONTRACT_CONTENT_TYPE = "application/toml"


@dataclass(frozen=True)
class PublishedContract:
    """One published contract object: its text and the version it was read at."""

    name: str
    uri: str  # s3://bucket/key
    etag: str
    data: bytes  # as uploaded: its SHA-256 is the version a report records


def contract_key(prefix: str, name: str) -> str:
    return f"{prefix}{name}{CONTRACT_SUFFIX}"


def read_published_contract(client: Minio, bucket: str, prefix: str, name: str) -> PublishedContract | None:
    """The contract `name` as published, or None when there is none (a missing bucket is an error).

    One GET, no HEAD first: a contract is a few kilobytes, and the object's eTag comes with it.
    """
    key = contract_key(prefix, name)
    stored = read_object(client, bucket, key)
    if stored is None:
        return None
    return PublishedContract(name=name, uri=f"s3://{bucket}/{key}", etag=stored.etag, data=stored.data)


def put_published_contract(client: Minio, bucket: str, prefix: str, name: str, data: bytes) -> PublishedContract:
    """Publish (or replace) the contract `name`; what the workers will now read."""
    key = contract_key(prefix, name)
    result = client.put_object(
        bucket, key, io.BytesIO(data), len(data), content_type=CONTRACT_CONTENT_TYPE
    )
    return PublishedContract(
        name=name, uri=f"s3://{bucket}/{key}", etag=str(result.etag or "").strip('"'), data=data
    )


def published_contract_names(client: Minio, bucket: str, prefix: str) -> list[str]:
    """The names of the contracts published under `prefix` (sorted)."""
    names = []
    for item in client.list_objects(bucket, prefix=prefix or None, recursive=False):
        key = item.object_name or ""
        if not item.is_dir and key.endswith(CONTRACT_SUFFIX):
            names.append(key[len(prefix):-len(CONTRACT_SUFFIX)])
    return sorted(names)
