"""The `process_object` runs the Prefect server knows, by the raw key they process.

Over Prefect's REST API with httpx (one `flow_runs/filter` call per page), rather than the
Prefect client: the console needs one query, not Prefect's import time and settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

FLOW_NAME = "process_object"
RUNS_LOOKED_AT = 200


@dataclass(frozen=True)
class FlowRun:
    id: str
    key: str
    etag: str | None
    state_type: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, ...
    start_time: datetime | None
    end_time: datetime | None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def latest_runs(api_url: str, api_key: str = "", timeout: float = 5.0) -> dict[str, FlowRun]:
    """The most recent run per raw key among the last RUNS_LOOKED_AT runs of `process_object`;
    empty when Prefect does not answer (the page then shows what the reports say)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.post(
            f"{api_url.rstrip('/')}/flow_runs/filter",
            json={
                "flows": {"name": {"any_": [FLOW_NAME]}},
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": RUNS_LOOKED_AT,
            },
            headers=headers,
            timeout=timeout,
        )
        response.raise_for_status()
        runs = response.json()
    except (httpx.HTTPError, ValueError):
        return {}
    latest: dict[str, FlowRun] = {}
    for run in runs if isinstance(runs, list) else []:
        parameters = run.get("parameters") or {}
        key = parameters.get("key")
        if not isinstance(key, str) or key in latest:
            continue  # sorted newest first: the first run seen for a key is its latest
        latest[key] = FlowRun(
            id=str(run.get("id")),
            key=key,
            etag=parameters.get("etag") if isinstance(parameters.get("etag"), str) else None,
            state_type=str(run.get("state_type") or (run.get("state") or {}).get("type") or ""),
            start_time=_time(run.get("start_time")),
            end_time=_time(run.get("end_time")),
        )
    return latest
