"""Helpers for tests that run or talk to the embedded stack (imported by conftest and tests)."""

from __future__ import annotations

import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from ivi.settings import GRPC_PORT_OFFSET, Settings


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, with_grpc: bool = False) -> list[int]:
    """`count` distinct free ports (and, with_grpc, their SeaweedFS gRPC port + 10000 free too).

    Drawn from 20000-29999, below the kernel's ephemeral range, so that no outgoing
    connection grabs one between this check and the server's bind.
    """
    chosen: list[int] = []
    candidates = list(range(20000, 30000))
    random.shuffle(candidates)
    for port in candidates:
        if port in chosen or (port + GRPC_PORT_OFFSET) in chosen:
            continue
        if _bindable(port) and (not with_grpc or _bindable(port + GRPC_PORT_OFFSET)):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports")


def isolated_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack of its own: free ports, `data_dir`, fresh secrets, no `.env`."""
    s3, master, volume, filer, admin = free_ports(5, with_grpc=True)
    prefect, relay, powerbi, postgres, console, metrics = free_ports(6)
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "s3_port": s3,
        "seaweed_master_port": master,
        "seaweed_volume_port": volume,
        "seaweed_filer_port": filer,
        "seaweed_admin_port": admin,
        "prefect_port": prefect,
        "relay_port": relay,
        "powerbi_port": powerbi,
        "postgres_port": postgres,
        "console_port": console,
        "metrics_port": metrics,
        "s3_access_key": f"test-{secrets.token_hex(4)}",
        "s3_secret_key": SecretStr(secrets.token_urlsafe(24)),
        "webhook_token": SecretStr(secrets.token_urlsafe(24)),
        "metrics_token": SecretStr(secrets.token_urlsafe(24)),
        "powerbi_standin_admin_token": SecretStr(secrets.token_urlsafe(24)),
        "postgres_password": SecretStr(secrets.token_urlsafe(24)),
        "console_password": SecretStr(secrets.token_urlsafe(12)),
        "console_session_secret": SecretStr(secrets.token_urlsafe(24)),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def auth_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.webhook_token.get_secret_value()}"}


def prefect_request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A Prefect API call that must succeed (an error status raises)."""
    kwargs.setdefault("timeout", 10)
    response = httpx.request(method, url, **kwargs)
    response.raise_for_status()
    return response


def prefect_events(settings: Settings, event_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """Events stored by the Prefect server that match `event_filter` (its EventFilter JSON)."""
    response = prefect_request(
        "POST", f"{settings.prefect_api_url}/events/filter", json={"filter": event_filter, "limit": 50}
    )
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def wait_for_events(
    settings: Settings, event_filter: dict[str, Any], *, count: int = 1, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Poll Prefect until `count` events match (events are persisted in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        events = prefect_events(settings, event_filter)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.25)


def relay_objects_grouping(settings: Settings) -> float:
    """How many objects of a burst the relay holds, not yet posted in a group (its gauge)."""
    response = httpx.get(
        f"{settings.relay_url}/metrics",
        headers={"Authorization": f"Bearer {settings.metrics_token.get_secret_value()}"},
        timeout=10,
    )
    response.raise_for_status()
    for family in text_string_to_metric_families(response.text):
        if family.name == "ivi_relay_objects_grouping":
            return float(family.samples[0].value)
    raise AssertionError("the relay's /metrics has no ivi_relay_objects_grouping")


def _grouping_unless_down(settings: Settings) -> float:
    """A relay that a test stopped holds nothing."""
    try:
        return relay_objects_grouping(settings)
    except httpx.ConnectError:
        return 0.0


def wait_for_relay_groups(settings: Settings, timeout: float = 60.0) -> None:
    """Until the relay holds no object of a burst (relay/dispatch.py): a trigger switched on
    again after this sees no group event of the time it was off."""
    deadline = time.monotonic() + timeout
    while (waiting := _grouping_unless_down(settings)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the relay still holds {waiting:.0f} object(s) of a burst after {timeout} s")
        time.sleep(0.1)


@contextmanager
def automations_paused(settings: Settings, *, watch_seconds: float = 3.0) -> Iterator[None]:
    """No deployment trigger fires while this runs (events a test makes up start no flow
    run); the automations that were enabled are enabled again afterwards, and then, for
    `watch_seconds`, none of them may start a run since the pause began (an event of the
    paused time that the triggers service only saw after re-enabling would, and fails here)."""
    api = settings.prefect_api_url
    wait_for_relay_groups(settings)  # a group of earlier uploads starts its run first
    automations = prefect_request("POST", f"{api}/automations/filter", json={}).json()
    enabled = [a["id"] for a in automations if a["enabled"]]
    paused_at = datetime.now(timezone.utc).isoformat()
    for automation_id in enabled:
        prefect_request("PATCH", f"{api}/automations/{automation_id}", json={"enabled": False})
    try:
        yield
    finally:
        wait_for_relay_groups(settings)
        for automation_id in enabled:
            prefect_request("PATCH", f"{api}/automations/{automation_id}", json={"enabled": True})

    def runs_of_paused_automations() -> list[str]:
        runs = prefect_request(
            "POST", f"{api}/flow_runs/filter",
            json={"flow_runs": {"expected_start_time": {"after_": paused_at}}, "limit": 200},
        ).json()
        marks = tuple(f"automation {automation_id}," for automation_id in enabled)
        return [run["name"] for run in runs if (run.get("idempotency_key") or "").startswith(marks)]

    assert_stays(lambda: not runs_of_paused_automations(), seconds=watch_seconds,
                 what="a trigger paused by automations_paused started a run for an event of the pause")


def assert_stays(condition: Callable[[], bool], *, seconds: float, what: str, interval: float = 0.25) -> None:
    """Absence, observed: `condition()` holds on every look during `seconds`; fails on the first
    look where it does not, naming `what` appeared (rather than looking once after a sleep)."""
    started = time.monotonic()
    while True:
        if not condition():
            raise AssertionError(f"{what} after {time.monotonic() - started:.1f} s")
        if time.monotonic() - started >= seconds:
            return
        time.sleep(interval)


@contextmanager
def pipeline_block_changed(settings: Settings, **changes: str) -> Iterator[None]:
    """Block `ivi-pipeline` saved with `changes` (as a misconfigured setup would leave it),
    and saved back as it was afterwards. Only for runs the test starts and waits for."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.pipeline import PIPELINE_BLOCK, PipelineBuckets

    with temporary_settings({PREFECT_API_URL: settings.prefect_api_url}):
        original = PipelineBuckets.load(PIPELINE_BLOCK)
        PipelineBuckets(**{**original.model_dump(exclude={"block_type_slug"}), **changes}).save(
            PIPELINE_BLOCK, overwrite=True
        )
        try:
            yield
        finally:
            original.save(PIPELINE_BLOCK, overwrite=True)


def declared_deployments() -> set[str]:
    """The deployments prefect.yaml declares: what the setup step must have deployed."""
    import yaml

    from tests.paths import REPO_ROOT

    document = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return {deployment["name"] for deployment in document["deployments"]}
