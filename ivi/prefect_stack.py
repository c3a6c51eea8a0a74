"""The Prefect part of the embedded stack: server, configuration, worker.

Every Prefect process gets its own `PREFECT_HOME` under the data dir (profiles, logs), so the
stack never reads or changes the user's `~/.prefect`. The server's database is the stack's
own PostgreSQL (ivi/postgres.py), so two stacks (the user's and a test session's) never share
one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from deployments.api_tls import ca_file_setting
from ivi import postgres
from ivi.processes import StackError
from ivi.settings import PROJECT_DIR, Settings

SERVER = "prefect-server"
WORKER = "worker"
ENGINE = "engine"


def prefect_home(settings: Settings) -> str:
    return str(settings.data_dir / "prefect")


def env(settings: Settings) -> dict[str, str]:
    """The environment of every Prefect process: ours, whatever the user's profile says."""
    home = prefect_home(settings)
    result = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    result.update(settings.child_env())
    del result["IVI_POSTGRES_PASSWORD"]  # the server gets its database URL: see server_env
    result.update(
        {
            "PREFECT_HOME": home,
            "PREFECT_PROFILES_PATH": os.path.join(home, "profiles.toml"),
            "PREFECT_API_URL": settings.prefect_api_url,
            **({"PREFECT_API_KEY": key} if (key := settings.prefect_api_key.get_secret_value()) else {}),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_query_seconds),
            "PREFECT_CLI_PROMPT": "false",
            # The project's blocks are saved (and their types registered) by
            # blocks/register.py; registering every installed block type at start-up
            # would add seconds to each server start.
            "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
            # the work pool's job command finds the pre-warmed engine here
            "IVI_PREWARMED_ENGINE_SOCKET": str(settings.engine_socket),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")])),
            **_plain_http_api_ca_file(settings),
        }
    )
    return result


def _plain_http_api_ca_file(settings: Settings) -> dict[str, str]:
    """Prefect's clients load a one-certificate CA file while the API is http://
    (deployments/api_tls.py says why)."""
    return ca_file_setting(settings.prefect_api_url, Path(prefect_home(settings)) / "plain-http-api-ca.pem")


# How the server writes what the flow runs report, as every topology runs it (Compose, the
# Helm values and Terraform's server environments set the same; tests/test_server_tuning.py).
# Prefect's defaults write each task-run event in a transaction of its own (batch size 1) and
# persist events 20 at a time or every 5 s. In a burst, a small file's run sends ~50 events,
# 27 of them task-run states, so the server spent most of its time in per-event writes.
# Measured (40 small uploads, same stack, one after the other; docs/shared-state.md): CPU per
# file 1.77-1.90 s with the defaults, 1.38-1.45 s with these, the server 0.87-0.95 -> 0.60-0.63
# and PostgreSQL 0.26-0.28 -> 0.17. The price: a task run's row is written up to a second after
# its event (the recorder truncates its flush interval to whole seconds), events within half a
# second (the persister flushes everything queued every 0.5 s; 500 is a bound, not a wait).
SERVER_TUNING: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def server_env(settings: Settings) -> dict[str, str]:
    """The server's environment: the others' plus its database, whose password no other
    process (the worker, the flow runs it starts) needs to see.

    Prefect's database defaults suit one server: a pool of 5 connections (+10 overflow) out
    of PostgreSQL's 100, a 10 s statement timeout, a 5 s connection timeout.
    """
    return {**env(settings), **SERVER_TUNING, "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres.connection_url(settings)}


def server_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "prefect", "server", "start",
        "--host", settings.prefect_host, "--port", str(settings.prefect_port),
    ]


# Flow runs the embedded worker runs at once; the rest wait, Scheduled. Measured with
# bench/bench_load.py (200 small uploads at once, 2 cores, server on PostgreSQL), back to
# back: 62.4 files/min at 8, 65.8 and 63.2 at 16, within the noise of one another; 8 keeps
# the memory of a burst of big files lower (a run peaks near 0.5 GB on a 1M-row file).
WORKER_RUN_LIMIT = 8


def worker_name(settings: Settings) -> str:
    """The embedded worker's name: the one its runs' logs say submitted them."""
    return f"ivi-{settings.prefect_port}"


def worker_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "prefect", "worker", "start",
        "--pool", settings.work_pool, "--type", "process", "--name", worker_name(settings),
        "--limit", str(WORKER_RUN_LIMIT),
    ]


def engine_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "deployments.prewarmed_engine", str(settings.engine_socket)]


def engine_is_ready(settings: Settings) -> bool:
    """The pre-warmed engine accepts connections on its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(settings.engine_socket))
        except OSError:
            return False
    return True


def server_is_ready(settings: Settings) -> bool:
    response = httpx.get(f"{settings.prefect_api_url}/health", timeout=2)
    return response.status_code == 200 and response.json() is True


def worker_is_ready(settings: Settings, since: float) -> bool:
    """A worker of our pool sent a heartbeat after `since` (a Unix time)."""
    response = httpx.post(
        f"{settings.prefect_api_url}/work_pools/{settings.work_pool}/workers/filter", json={}, timeout=2
    )
    if response.status_code != 200:
        return False
    for worker in response.json():
        beat = worker.get("last_heartbeat_time")
        if beat and datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp() >= since - 1:
            return True
    return False


def start_apply(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start applying the work pool, blocks and deployments (`deployments/apply.py`).

    A child process rather than a call: it needs Prefect imported with this stack's settings.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} applying configuration\n".encode())
        log.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "deployments.apply"],
            cwd=PROJECT_DIR,
            env=env(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish_apply(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise StackError(f"applying prefect.yaml and blocks timed out; see {log_path}") from None
    if returncode != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        reason = f": {lines[-1]}" if lines else ""
        raise StackError(f"applying prefect.yaml and blocks failed{reason}; see {log_path}")
