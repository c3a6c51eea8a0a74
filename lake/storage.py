"""The storage options delta-rs needs to reach a table in an S3-compatible store.

Commits are safe with several writers because delta-rs writes each `_delta_log` entry with a
conditional PUT (`If-None-Match: *`): a second writer of the same version gets 412 and
retries on top of the new version. SeaweedFS and MinIO honour it (docs/shared-state.md).
`conditional_put=etag` says so explicitly instead of relying on delta-rs' default.
"""

from __future__ import annotations


def s3_storage_options(endpoint: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """delta-rs `storage_options` for the store at `endpoint` (`http://host:port` or https)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": region,
        "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
        "conditional_put": "etag",
    }


def table_uri(bucket: str, contract: str) -> str:
    """Where a contract's table lives: `s3://<lake bucket>/<contract>`."""
    return f"s3://{bucket}/{contract}"
