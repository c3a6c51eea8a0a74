"""`ivi up`, `ivi down`, `ivi status`: the embedded stack on one machine, without Docker.

    SeaweedFS (S3 + filer webhook) --> relay --> Prefect server --> worker --> flows
        ^                                              |            Power BI stand-in <--' (export)
        '-- console (uploads, status, replays)     PostgreSQL

Each service is a background process in its own session, with its pid in
`<data>/pids/<name>.pid` and its output in `<data>/logs/<name>.log`; `up` starts only what is
not running and returns when everything answers, `down` stops everything by pid. The same
functions take a `Settings` so that tests run a whole stack on other ports in a temp dir.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from ivi import postgres, prefect_stack, seaweed, standin
from ivi.processes import (
    ServiceFiles,
    StackError,
    require_free_ports,
    running,
    spawn,
    stop,
    wait_until,
)
from ivi.settings import ENV_EXAMPLE_FILE, ENV_FILE, PROJECT_DIR, Settings

RELAY = "relay"
CONSOLE = "console"
START_TIMEOUT_SECONDS = 180.0  # a cold Prefect server takes 20-60 s on a busy 2-core machine
STOP_TIMEOUT_SECONDS = 10.0
# `.env` values `ivi up` generates when it creates the file.
_GENERATED_SECRETS: dict[str, Callable[[], str]] = {
    "IVI_S3_ACCESS_KEY": lambda: f"ivi-{secrets.token_hex(8)}",
    "IVI_S3_SECRET_KEY": lambda: secrets.token_urlsafe(30),
    "IVI_WEBHOOK_TOKEN": lambda: secrets.token_urlsafe(32),
    "IVI_POWERBI_STANDIN_ADMIN_TOKEN": lambda: secrets.token_urlsafe(32),
    "IVI_POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(32),
    "IVI_CONSOLE_PASSWORD": lambda: secrets.token_urlsafe(12),
    "IVI_CONSOLE_SESSION_SECRET": lambda: secrets.token_urlsafe(32),
}


@dataclass(frozen=True)
class Service:
    """A background process of the stack and how to tell that it answers."""

    name: str
    ready: Callable[[Settings], bool]


def relay_is_ready(settings: Settings) -> bool:
    return httpx.get(f"{settings.relay_url}/healthz", timeout=2).status_code == 200


def console_is_ready(settings: Settings) -> bool:
    return httpx.get(f"{settings.console_url}/healthz", timeout=2).status_code == 200


def _worker_is_alive(settings: Settings) -> bool:
    return True  # its pid is the only cheap signal; `up` waits for its first heartbeat


SERVICES = (
    Service(postgres.SERVICE, postgres.is_ready),
    Service(seaweed.SERVICE, seaweed.is_ready),
    Service(prefect_stack.SERVER, prefect_stack.server_is_ready),
    Service(RELAY, relay_is_ready),
    Service(CONSOLE, console_is_ready),
    Service(standin.SERVICE, standin.is_ready),
    Service(prefect_stack.WORKER, _worker_is_alive),
    Service(prefect_stack.ENGINE, prefect_stack.engine_is_ready),
)


def files(settings: Settings, name: str) -> ServiceFiles:
    return ServiceFiles.under(settings.data_dir, name)


# --- ivi up ---------------------------------------------------------------------------------
def up(settings: Settings | None = None) -> int:
    """Start whatever is not running; return once S3, Prefect, the worker, the relay and
    the Power BI stand-in answer."""
    if settings is None:
        if ensure_env_file():
            print(f"created {ENV_FILE} with fresh secrets (keep it out of git)")
        elif added := add_missing_secrets():
            print(f"added {', '.join(added)} to {ENV_FILE} with fresh values")
        settings = Settings()
    started_at = time.monotonic()
    try:
        started = start(settings)
    except StackError as error:
        print(f"ivi up: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # e.g. the store refusing to create a bucket
        print(f"ivi up: {type(error).__name__}: {error} (logs in {settings.data_dir / 'logs'})",
              file=sys.stderr)
        return 1
    took = time.monotonic() - started_at
    print(f"started: {', '.join(started) or 'nothing (all running)'} in {took:.1f} s")
    _print_endpoints(settings)
    return 0


@dataclass(frozen=True)
class Launch:
    """How to start one server of the stack."""

    name: str
    title: str
    host: str
    ports: dict[str, int]
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    prepare: Callable[[], None] = lambda: None
    needs: tuple[str, ...] = ()  # services that must answer before this one starts
    user: tuple[int, int] | None = None  # (uid, gid) to run as, for a server refusing root


def _server_launches(settings: Settings) -> list[Launch]:
    """The servers of the stack; only the Prefect server waits for another (its database).

    The Prefect server comes last, so that the others start while PostgreSQL gets ready.
    """
    prefect_env = prefect_stack.env(settings)
    return [
        Launch(
            postgres.SERVICE, "PostgreSQL", postgres.LISTEN_IP, {"postgres": settings.postgres_port},
            postgres.command(settings), dict(os.environ), PROJECT_DIR,
            prepare=lambda: postgres.prepare(settings), user=postgres.os_user(),
        ),
        Launch(
            seaweed.SERVICE, "SeaweedFS", seaweed.LISTEN_IP,
            {**settings.seaweed_ports, **settings.seaweed_grpc_ports},
            seaweed.command(settings), dict(os.environ), seaweed.home(settings),
            prepare=lambda: seaweed.write_config(settings, f"{settings.relay_url}/seaweedfs/events"),
        ),
        Launch(
            RELAY, "the relay", settings.relay_host, {"relay": settings.relay_port},
            relay_command(settings), prefect_env, PROJECT_DIR,
        ),
        Launch(
            CONSOLE, "the console", settings.console_host, {"console": settings.console_port},
            console_command(settings), prefect_env, PROJECT_DIR,
        ),
        # Before the configuration is applied: the blocks register their datasets in it.
        Launch(
            standin.SERVICE, "the Power BI stand-in", standin.LISTEN_IP,
            {"powerbi": settings.powerbi_port},
            standin.command(settings), standin.env(settings), PROJECT_DIR,
        ),
        Launch(
            prefect_stack.SERVER, "the Prefect server", settings.prefect_host,
            {"prefect": settings.prefect_port},
            prefect_stack.server_command(settings), prefect_stack.server_env(settings), PROJECT_DIR,
            needs=(postgres.SERVICE,),
        ),
    ]


def start(settings: Settings, *, configure: bool = True) -> list[str]:
    """Start what is not running (raises StackError); return the names of those started.

    Every port is checked before anything starts; when a step fails, what this call started
    is stopped again, so a failed `up` leaves nothing half-running.

    `configure=False` skips applying the Prefect configuration (pool, blocks, deployments),
    which lives in the server's database and survives any service's restart: bringing back
    one service that died then takes seconds, not the tens of seconds of a
    `prefect deploy --all` on a busy machine.
    """
    _require_secrets(settings)
    to_launch = [launch for launch in _server_launches(settings) if not _answers(settings, launch.name)]
    worker_files = files(settings, prefect_stack.WORKER)
    worker_needed = running(worker_files) is None
    engine_needed = not _answers(settings, prefect_stack.ENGINE)
    for launch in to_launch:
        require_free_ports(launch.title, launch.host, launch.ports)

    launched: dict[str, psutil.Process] = {}
    try:
        # The servers start at once (each takes seconds), then each is waited for; one that
        # needs another started here waits for it first.
        ready: set[str] = set()
        for launch in to_launch:
            for name in launch.needs:
                if name in launched and name not in ready:
                    _wait_ready(settings, name, launched[name])
                    ready.add(name)
            launch.prepare()
            launched[launch.name] = spawn(
                files(settings, launch.name), launch.argv, env=launch.env, cwd=launch.cwd,
                user=launch.user,
            )
        for launch in to_launch:
            if launch.name not in ready:
                _wait_ready(settings, launch.name, launched[launch.name])
        seaweed.ensure_buckets(settings)

        # Work pool, blocks and deployments are applied while the worker starts: both import
        # Prefect for seconds, and the worker creates the pool itself if it gets there first.
        apply_log = files(settings, "prefect-apply").log_file
        applying = prefect_stack.start_apply(settings, apply_log) if configure else None
        try:
            if engine_needed:  # imports for seconds too: started beside the worker
                launched[prefect_stack.ENGINE] = spawn(
                    files(settings, prefect_stack.ENGINE), prefect_stack.engine_command(settings),
                    env=prefect_stack.env(settings), cwd=PROJECT_DIR,
                )
            if worker_needed:
                since = time.time()
                launched[prefect_stack.WORKER] = spawn(
                    worker_files, prefect_stack.worker_command(settings),
                    env=prefect_stack.env(settings), cwd=PROJECT_DIR,
                )
                wait_until(
                    lambda: prefect_stack.worker_is_ready(settings, since),
                    what="the Prefect worker", files=worker_files,
                    process=launched[prefect_stack.WORKER], timeout=START_TIMEOUT_SECONDS,
                )
            if engine_needed:
                _wait_ready(settings, prefect_stack.ENGINE, launched[prefect_stack.ENGINE])
        finally:
            if applying is not None:
                prefect_stack.finish_apply(applying, apply_log, timeout=START_TIMEOUT_SECONDS)
    except BaseException:
        _stop(settings, list(launched))
        raise
    return list(launched)


def relay_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "relay.app:app",
        "--host", settings.relay_host, "--port", str(settings.relay_port),
        "--log-level", "info",
    ]


def console_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "console.app:create_app",
        "--host", settings.console_host, "--port", str(settings.console_port),
        "--log-level", "info",
    ]


def _require_secrets(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("IVI_S3_SECRET_KEY", settings.s3_secret_key.get_secret_value()),
            ("IVI_WEBHOOK_TOKEN", settings.webhook_token.get_secret_value()),
            ("IVI_POSTGRES_PASSWORD", settings.postgres_password.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise StackError(f"{', '.join(missing)} not set (in the environment or {ENV_FILE})")


def _answers(settings: Settings, name: str) -> bool:
    """Our process for `name` runs and answers (a stale pid file is removed)."""
    service_files = files(settings, name)
    if running(service_files) is None:
        service_files.pid_file.unlink(missing_ok=True)
        return False
    service = next(s for s in SERVICES if s.name == name)
    try:
        return service.ready(settings)
    except Exception:
        return False


def _wait_ready(settings: Settings, name: str, process: psutil.Process) -> None:
    service = next(s for s in SERVICES if s.name == name)
    wait_until(
        lambda: service.ready(settings),
        what=name,
        files=files(settings, name),
        process=process,
        timeout=START_TIMEOUT_SECONDS,
    )


def ensure_env_file(env_file: Path = ENV_FILE, example: Path = ENV_EXAMPLE_FILE) -> bool:
    """Create `.env` from `.env.example` with fresh secrets when absent; True if created."""
    if env_file.exists():
        return False
    lines = []
    for line in example.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name in _GENERATED_SECRETS and not value.strip():
            line = f"{name}={_GENERATED_SECRETS[name]()}"
        lines.append(line)
    env_file.touch(mode=0o600)
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def add_missing_secrets(env_file: Path = ENV_FILE) -> list[str]:
    """Append a fresh value for each generated secret that an existing `.env` lacks entirely
    (one created before the setting existed, e.g. IVI_POSTGRES_PASSWORD); a line present but
    empty is the user's choice and left alone. Returns the names added."""
    if not env_file.exists():
        return []
    text = env_file.read_text(encoding="utf-8")
    present = {line.partition("=")[0].strip() for line in text.splitlines()}
    missing = [name for name in _GENERATED_SECRETS if name not in present]
    if missing:
        separator = "\n" if text and not text.endswith("\n") else ""
        with env_file.open("a", encoding="utf-8") as env:
            env.write(separator + "".join(f"{name}={_GENERATED_SECRETS[name]()}\n" for name in missing))
    return missing


# --- ivi down -------------------------------------------------------------------------------
# Stopped in waves, each in parallel: first what sends (the worker talks to the Prefect
# server while it shuts down; SeaweedFS delivers its last webhooks to the relay), then what
# receives, then the Prefect server's database. Stopping all at once made the worker and
# SeaweedFS hang until SIGKILL.
STOP_WAVES = (
    (prefect_stack.WORKER, prefect_stack.ENGINE, seaweed.SERVICE),
    (RELAY, CONSOLE, prefect_stack.SERVER, standin.SERVICE),
    (postgres.SERVICE,),
)


def down(settings: Settings | None = None) -> int:
    """Stop every service `up` started, by pid."""
    settings = settings or Settings()
    stopped: list[str] = []
    for wave in STOP_WAVES:
        stopped += _stop(settings, wave)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def _stop(settings: Settings, names: Sequence[str]) -> list[str]:
    return stop(
        [files(settings, name) for name in names], timeout=STOP_TIMEOUT_SECONDS,
        leader_signals={postgres.SERVICE: postgres.STOP_SIGNAL},
    )


# --- ivi status -----------------------------------------------------------------------------
def describe(settings: Settings) -> dict[str, object]:
    """What `ivi status --json` prints: endpoints, bucket names, service states; no secret."""
    return {
        "s3_endpoint": settings.s3_endpoint,
        "prefect_api_url": settings.prefect_api_url,
        "prefect_ui_url": settings.prefect_ui_url,
        "relay_url": settings.relay_url,
        "console_url": settings.console_url,
        "powerbi_standin_url": settings.powerbi_standin_url,
        "buckets": dict(settings.buckets),
        "services": {
            service.name: "up" if _answers(settings, service.name) else "down"
            for service in SERVICES
        },
    }


def status(as_json: bool = False, settings: Settings | None = None) -> int:
    """Print what runs; exit status 0 when everything is up, else 1."""
    settings = settings or Settings()
    state = describe(settings)
    services: dict[str, str] = state["services"]  # type: ignore[assignment]
    if as_json:
        print(json.dumps(state, indent=2))
    else:
        for name, value in services.items():
            print(f"{name:16} {value}")
        _print_endpoints(settings)
    return 0 if all(value == "up" for value in services.values()) else 1


def _print_endpoints(settings: Settings) -> None:
    print(f"S3 endpoint      {settings.s3_endpoint}  (buckets: {', '.join(settings.buckets.values())})")
    print(f"Prefect UI       {settings.prefect_ui_url}")
    print(f"Prefect API      {settings.prefect_api_url}")
    print(f"relay            {settings.relay_url}  (POST /minio/events, /seaweedfs/events)")
    print(f"console          {settings.console_url}  (sign in as {settings.console_user}, "
          "password IVI_CONSOLE_PASSWORD of .env)")
    print(f"Power BI stand-in {settings.powerbi_standin_url}  (local stand-in, not Power BI; "
          "rows page at /, password IVI_POWERBI_STANDIN_ADMIN_TOKEN of .env when set)")
    print(f"logs             {settings.data_dir / 'logs'}")
