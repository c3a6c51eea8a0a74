"""Helpers for the fault tests: break a service of the session's stack by pid, bring it back.

Every service runs in its own session, its pid in `<data>/pids/<name>.pid`
(`ivi/processes.py`); these helpers find it with `ivi.processes.running`, stop it with
`ivi.processes.stop` (SIGTERM, then SIGKILL) or kill its process group outright (a crash),
freeze it with SIGSTOP, and bring back whatever no longer answers with `ivi.stack.start`,
without re-applying the Prefect configuration, which survives in the server's database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from ivi import stack as ivi_stack
from ivi.processes import running, stop
from ivi.settings import Settings
from tests.pipeline_support import FINAL_STATES
from tests.stack_support import prefect_request, wait_for_relay_groups

HEALTHY_TIMEOUT_SECONDS = 240.0  # a Prefect server restart takes 20-70 s on a busy 2-core box
TRIGGER_AUTOMATION = "process-object-on-upload"
GROUP_TRIGGER_AUTOMATION = "process-objects-on-burst"  # a burst's groups (relay/dispatch.py)
UPLOAD_TRIGGERS = (TRIGGER_AUTOMATION, GROUP_TRIGGER_AUTOMATION)


def poll(condition: Callable[[], Any], what: str, timeout: float, interval: float = 0.2) -> Any:
    """`condition()`'s first truthy value; a probe that raises counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - a service coming back refuses for a while
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


# --- services by pid --------------------------------------------------------------------------
def wait_until_unchanged(value: Callable[[], Any], what: str, quiet: float, timeout: float) -> Any:
    """`value()` once it has stayed the same for `quiet` seconds: a sender that retries with
    back-off has given up when nothing new arrived for longer than its longest pause."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (still changing: {last!r})")
        time.sleep(0.5)
        current = value()
        if current != last:
            last, since = current, time.monotonic()
    return last


def service_process(settings: Settings, name: str) -> psutil.Process:
    """The running process of a stack service (the one its pid file names)."""
    process = running(ivi_stack.files(settings, name))
    assert process is not None, f"{name} is not running"
    return process


def stop_service(settings: Settings, name: str) -> None:
    """Stop a service as `ivi down` would (SIGTERM to its group, SIGKILL after 10 s)."""
    service_process(settings, name)
    assert stop([ivi_stack.files(settings, name)], timeout=ivi_stack.STOP_TIMEOUT_SECONDS) == [name]


def kill_service(settings: Settings, name: str) -> None:
    """SIGKILL the service's whole process group at once: a crash, not a shutdown."""
    process = service_process(settings, name)
    members = [process, *process.children(recursive=True)]
    os.killpg(process.pid, signal.SIGKILL)  # its own session: the group id is its pid
    _gone, alive = psutil.wait_procs(members, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], f"{name} survived SIGKILL"
    assert running(ivi_stack.files(settings, name)) is None  # reaps it: the tests are its parent


def freeze(process: psutil.Process) -> None:
    """SIGSTOP: the process keeps its sockets open and answers nothing (a hung server)."""
    process.send_signal(signal.SIGSTOP)


def services_state(settings: Settings) -> dict[str, str]:
    return dict(ivi_stack.describe(settings)["services"])  # type: ignore[arg-type]


def bring_back(settings: Settings) -> list[str]:
    """Start every service that does not answer and wait until the whole stack is healthy.

    `ivi.stack.start` starts only what is not running; `configure=False` because the pool,
    blocks and deployments are in the Prefect server's database already. Returns the names
    of the services it started.
    """
    since = time.time()
    started = ivi_stack.start(settings, configure=False)
    wait_healthy(settings, polled_since=since if started else None)
    return started


def wait_healthy(settings: Settings, polled_since: float | None = None) -> None:
    """Every service answers, and (with `polled_since`) the worker has asked the Prefect
    server for work since then: a worker that lived through a server restart reconnects on
    its own, but only on its next poll."""
    poll(lambda: set(services_state(settings).values()) == {"up"}, "every service to answer",
         HEALTHY_TIMEOUT_SECONDS, interval=0.5)
    if polled_since is not None:
        poll(lambda: worker_polled_after(settings, polled_since), "the worker to poll again",
             HEALTHY_TIMEOUT_SECONDS, interval=0.5)


def worker_polled_after(settings: Settings, since: float) -> bool:
    queues = prefect_request(
        "POST", f"{settings.prefect_api_url}/work_pools/{settings.work_pool}/queues/filter", json={}
    ).json()
    return any(q["last_polled"] and _unix(q["last_polled"]) >= since for q in queues)


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@contextmanager
def stack_left_healthy(settings: Settings) -> Iterator[None]:
    """Whatever the test broke, every service runs and answers again when it ends."""
    try:
        yield
    finally:
        for process in _stopped_processes(settings):
            process.send_signal(signal.SIGCONT)
        bring_back(settings)


def _stopped_processes(settings: Settings) -> list[psutil.Process]:
    found = []
    for service in ivi_stack.SERVICES:
        process = running(ivi_stack.files(settings, service.name))
        try:
            if process is not None and process.status() == psutil.STATUS_STOPPED:
                found.append(process)
        except psutil.Error:
            continue
    return found


# --- flow runs --------------------------------------------------------------------------------
IN_FLIGHT_STATES = ["PENDING", "RUNNING"]


RECENT_RUN_SECONDS = 600  # an orphan a failed test left Running ages out of the wait


def wait_for_no_runs_in_flight(settings: Settings, timeout: float = 180.0) -> None:
    """No recent process_object run is Pending or Running: what an earlier test started has
    ended, so it cannot take the faults or the Power BI requests this test looks at."""
    def in_flight() -> list[str]:
        recent = datetime.fromtimestamp(time.time() - RECENT_RUN_SECONDS, tz=timezone.utc).isoformat()
        response = prefect_request(
            "POST", f"{settings.prefect_api_url}/flow_runs/filter",
            json={"flows": {"name": {"any_": ["process_object"]}},
                  "flow_runs": {"state": {"type": {"any_": IN_FLIGHT_STATES}},
                                "expected_start_time": {"after_": recent}}, "limit": 50},
        )
        return [run["name"] for run in response.json()]

    poll(lambda: not in_flight(), "the runs earlier tests left in flight to end", timeout, interval=0.5)


def create_run(
    settings: Settings,
    deployment: str,
    parameters: dict[str, Any],
    job_variables: dict[str, Any] | None = None,
) -> str:
    """A run of `deployment` (its flow/name), with job variables (e.g. the run's environment)."""
    found = prefect_request("GET", f"{settings.prefect_api_url}/deployments/name/{deployment}").json()
    created = prefect_request(
        "POST",
        f"{settings.prefect_api_url}/deployments/{found['id']}/create_flow_run",
        json={"parameters": parameters, "job_variables": job_variables or {}},
    )
    return str(created.json()["id"])


def flow_run(settings: Settings, flow_run_id: str) -> dict[str, Any]:
    return dict(prefect_request("GET", f"{settings.prefect_api_url}/flow_runs/{flow_run_id}").json())


def wait_for_final_state(settings: Settings, flow_run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    return dict(poll(
        lambda: (run := flow_run(settings, flow_run_id))["state_type"] in FINAL_STATES and run,
        f"flow run {flow_run_id} to end", timeout, interval=0.5,
    ))


def task_runs(settings: Settings, flow_run_id: str, including: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The flow run's task runs, once one named `including…` is recorded and all have ended.

    The server records task runs from the runs' events in batches (ivi/prefect_stack.py:
    up to a second after the flow run ended), so a read at its end may find them behind."""

    def recorded() -> list[dict[str, Any]] | None:
        runs = list(prefect_request(
            "POST",
            f"{settings.prefect_api_url}/task_runs/filter",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200},
        ).json())
        ended = all(run["state_type"] in FINAL_STATES for run in runs)
        return runs if ended and any(run["name"].startswith(including) for run in runs) else None

    return list(poll(recorded, f"the task runs of {flow_run_id} to be recorded", timeout, interval=0.25))


@contextmanager
def upload_trigger_disabled(settings: Settings) -> Iterator[None]:
    """The upload triggers switched off (an object's own and a burst's group's), so that only
    the runs a test creates process its objects (the store's event still reaches Prefect;
    nothing acts on it)."""
    wait_for_relay_groups(settings)  # a group of earlier uploads starts its run first
    _set_trigger_enabled(settings, False)
    try:
        yield
    finally:
        wait_for_relay_groups(settings)
        _set_trigger_enabled(settings, True)


def _set_trigger_enabled(settings: Settings, enabled: bool) -> None:
    automations = prefect_request(
        "POST", f"{settings.prefect_api_url}/automations/filter", json={}
    ).json()
    matching = [a for a in automations if a["name"] in UPLOAD_TRIGGERS]
    assert {a["name"] for a in matching} == set(UPLOAD_TRIGGERS), f"missing one of {UPLOAD_TRIGGERS}"
    for automation in matching:
        prefect_request(
            "PATCH", f"{settings.prefect_api_url}/automations/{automation['id']}", json={"enabled": enabled}
        )


# --- a disk that fills up ---------------------------------------------------------------------
@contextmanager
def tiny_tmpfs(directory: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (root only, as in CI), unmounted at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=True)  # still in use: detach



# --- a store that gives up --------------------------------------------------------------------
# SeaweedFS 4.48's filer webhook (weed/notification/webhook/webhook_queue.go) wraps each
# delivery in watermill's Retry middleware (ivi/seaweed.py sets max_retries = 3,
# backoff_seconds = 1, max_backoff_seconds = 10: pauses of 1, 2, 4 s, each +-30 %) and a
# poison queue, whose consumer logs "received dead letter message: ..., key: <path>" and
# keeps nothing. Observed here (tests/test_pipeline_e2e.py prints it): one attempt, then the
# dead letter at once; the poison queue, added after the retry, sits inside it and swallows
# the error. The waits below still allow for the configured retries, should a version retry.
SEAWEED_LONGEST_RETRY_PAUSE_SECONDS = 4 * 1.3


class RefusingWebhook:
    """A throwaway receiver on the relay's port that answers every delivery 503 and records
    it: (monotonic time, event_type, key) per POST. The relay must be stopped first."""

    def __init__(self, settings: Settings) -> None:
        deliveries: list[tuple[float, str, str]] = []
        self.deliveries = deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    document = json.loads(body)
                    deliveries.append((time.monotonic(), str(document.get("event_type")), str(document.get("key"))))
                except ValueError:
                    deliveries.append((time.monotonic(), "", ""))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self.server = ThreadingHTTPServer((settings.relay_host, settings.relay_port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RefusingWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def attempts(self, path: str) -> list[tuple[float, str]]:
        return [(at, event_type) for at, event_type, key in list(self.deliveries) if key == path]


def seaweed_dead_letters(settings: Settings, path: str, offset: int) -> int:
    """How many deliveries of `path` (`/buckets/<bucket>/<key>`) SeaweedFS gave up on, per its
    log, past `offset`."""
    with ivi_stack.files(settings, "seaweedfs").log_file.open("rb") as handle:
        handle.seek(offset)
        written = handle.read().decode(errors="replace")
    return sum(line.endswith(f", key: {path}") for line in written.splitlines()
               if "received dead letter message" in line)


def wait_until_seaweed_gives_up(settings: Settings, hook: RefusingWebhook, path: str, offset: int,
                                timeout: float = 120.0) -> list[tuple[float, str]]:
    """Once SeaweedFS has given up on `path`: it logged a dead letter for it, and no new
    attempt reached `hook` for longer than its longest pause between retries. Returns the
    attempts seen."""
    poll(lambda: hook.attempts(path), f"SeaweedFS to deliver {path}", timeout)
    poll(lambda: seaweed_dead_letters(settings, path, offset), f"SeaweedFS to give up on {path}", timeout)
    wait_until_unchanged(lambda: len(hook.attempts(path)), f"SeaweedFS to stop retrying {path}",
                         quiet=SEAWEED_LONGEST_RETRY_PAUSE_SECONDS + 1, timeout=timeout)
    return hook.attempts(path)
