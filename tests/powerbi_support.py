"""Helpers for tests against the Power BI stand-in: the server in a thread, and its test API.

The fixtures that use them are in `tests/powerbi_fixtures.py`; this module holds what tests
import by name (so that the fixtures module is only ever loaded as a pytest plugin).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import uvicorn

from powerbi_standin.app import create_app

TEST_CLIENT_ID = "ivi-test-client"
TEST_CLIENT_SECRET = "ivi-test-secret-0123456789"
TEST_STATIC_TOKEN = "ivi-static-token-0123456789"
TEST_TENANT = "ivi-test-tenant"
TEST_GROUP = "ivi-test-workspace"
TEST_ADMIN_TOKEN = "ivi-admin-token-0123456789"


class StandInServer:
    """uvicorn serving `create_app(db_path, ...)` in a thread, on a socket bound beforehand.

    Binding the socket here (port 0) and handing it to uvicorn leaves no window in which
    another process could take the port between choosing it and listening on it.
    """

    def __init__(self, db_path: Path, **app_options: Any) -> None:
        self.db_path = db_path
        self.admin_token: str | None = app_options.get("admin_token")
        self.app = create_app(db_path, **app_options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="critical", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> StandInServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Power BI stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class RegisteredDataset:
    id: str
    key: str
    table: str
    push_url: str


class StandIn:
    """The running stand-in, with the test-only helpers its `/_standin` routes offer."""

    def __init__(self, server: StandInServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()
        if server.admin_token:
            self.http.headers["Authorization"] = f"Bearer {server.admin_token}"

    def register(
        self,
        columns: Mapping[str, str],
        *,
        streaming_only: bool = False,
        limits: Mapping[str, int] | None = None,
        table: str = "RealTimeData",
        group: str = TEST_GROUP,
        retention: str | None = None,
    ) -> RegisteredDataset:
        """A fresh dataset with one table of `columns` (name -> Power BI type); `retention`
        is its defaultRetentionPolicy (None or basicFIFO; unset: None)."""
        dataset_id, key = str(uuid.uuid4()), uuid.uuid4().hex
        answer = self.http.post(
            f"{self.url}/_standin/datasets",
            json={
                "id": dataset_id,
                "key": key,
                "group": group,
                "streaming_only": streaming_only,
                "table": table,
                "columns": [{"name": n, "dataType": t} for n, t in columns.items()],
                "limits": dict(limits or {}),
                **({"defaultRetentionPolicy": retention} if retention else {}),
            },
            timeout=10,
        )
        answer.raise_for_status()
        push_url = f"{self.url}/beta/{TEST_TENANT}/datasets/{dataset_id}/rows?key={key}"
        return RegisteredDataset(dataset_id, key, table, push_url)

    def seed(self, dataset_id: str, table: str, rows: int) -> int:
        """Add `rows` placeholder rows to a table (admin); the table's row count after it."""
        answer = self.http.post(
            f"{self.url}/_standin/datasets/{dataset_id}/tables/{table}/seed",
            json={"rows": rows}, timeout=30,
        )
        answer.raise_for_status()
        return int(answer.json()["rows"])

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's rate windows `seconds` into the future (admin)."""
        self.http.post(
            f"{self.url}/_standin/clock", json={"advance_seconds": seconds}, timeout=10
        ).raise_for_status()

    def fault(self, dataset_id: str | None, kind: str, count: int = 1, **extra: float) -> None:
        body: dict[str, Any] = {"dataset_id": dataset_id, "kind": kind, "count": count, **extra}
        self.http.post(f"{self.url}/_standin/faults", json=body, timeout=10).raise_for_status()

    def rows(self, dataset_id: str, limit: int = 1_000_000) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.url}/_standin/datasets/{dataset_id}/rows", params={"limit": limit}, timeout=30
        )
        answer.raise_for_status()
        return list(answer.json()["rows"])

    def count(self, dataset_id: str) -> int:
        answer = self.http.get(
            f"{self.url}/_standin/datasets/{dataset_id}/rows", params={"limit": 0}, timeout=10
        )
        answer.raise_for_status()
        return int(answer.json()["count"])

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        answer = self.http.get(f"{self.url}/_standin/datasets/{dataset_id}", timeout=10)
        answer.raise_for_status()
        return dict(answer.json())
