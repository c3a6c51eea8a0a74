"""`ivi up` / `ivi status` / `ivi down`: what a user of the embedded stack relies on.

Tests marked `services` use the session's stack (tests/conftest.py); the others start at most
a few throwaway processes of their own.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from urllib.parse import quote_plus
from typing import Any

import httpx
import psutil
import pytest
from minio import Minio
from pydantic import SecretStr
from tests.pipeline_support import flow_runs_for_key
from tests.stack_support import declared_deployments, isolated_settings, prefect_request

from ivi import seaweed, standin
from ivi import stack as ivi_stack
from ivi.processes import ServiceFiles, StackError, running, spawn, stop
from ivi.settings import Settings
from tests.paths import REPO_ROOT

services = pytest.mark.services


# --- ivi status ---------------------------------------------------------------------------------
@services
def test_status_json_shows_endpoints_buckets_and_services_but_no_secret(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ivi.cli", "status", "--json"],
        env={**os.environ, **stack.child_env()}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert state == {
        "s3_endpoint": stack.s3_endpoint,
        "prefect_api_url": f"http://127.0.0.1:{stack.prefect_port}/api",
        "prefect_ui_url": f"http://127.0.0.1:{stack.prefect_port}",
        "relay_url": stack.relay_url,
        "console_url": f"http://127.0.0.1:{stack.console_port}",
        "powerbi_standin_url": f"http://127.0.0.1:{stack.powerbi_port}",
        "metrics_urls": [f"{stack.relay_url}/metrics", f"http://127.0.0.1:{stack.metrics_port}/metrics"],
        "buckets": {"raw": "raw", "processed": "processed", "quarantine": "quarantine", "lake": "lake"},
        "services": {"postgres": "up", "seaweedfs": "up", "prefect-server": "up", "relay": "up",
                     "console": "up", "metrics": "up", "powerbi-standin": "up", "worker": "up", "engine": "up"},
    }
    for secret in (stack.webhook_token, stack.s3_secret_key, stack.postgres_password, stack.console_password,
                   stack.console_session_secret, stack.metrics_token):
        assert secret.get_secret_value() not in result.stdout + result.stderr
    from ivi.seaweed import bucket_status

    assert bucket_status(stack) == {"raw": True, "processed": True, "quarantine": True, "lake": True}


def test_status_of_a_stack_that_is_not_running_says_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = isolated_settings(tmp_path)
    assert ivi_stack.status(as_json=True, settings=settings) == 1
    state = json.loads(capsys.readouterr().out)
    assert set(state["services"].values()) == {"down"}


# --- ivi up -------------------------------------------------------------------------------------
def _s3(settings: Settings) -> Minio:
    return Minio(settings.s3_address, access_key=settings.s3_access_key,
                 secret_key=settings.s3_secret_key.get_secret_value(), secure=False)


def _event_runs(settings: Settings, key: str) -> list[dict[str, Any]]:
    """The key's runs that store events started: not those of the reconcile, which runs every
    5 minutes and may start one for an object whose event run has already begun (its
    idempotency key is `<bucket>/<key>@<eTag>#<backfill run>`)."""
    return [run for run in flow_runs_for_key(settings, key)
            if not (run.get("idempotency_key") or "").startswith(f"{settings.raw_bucket}/")]


def _wait_for_runs(settings: Settings, key: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(runs := _event_runs(settings, key)) < count and time.monotonic() < deadline:
        time.sleep(0.25)
    return runs


@services
def test_an_upload_to_the_raw_bucket_starts_a_process_object_run(stack: Settings) -> None:
    s3 = _s3(stack)
    key = f"clientes/2026/nov ç+{uuid.uuid4().hex[:6]}.csv"
    body = b"idade,genero,renda_mensal\n30,F,1000\n"
    s3.put_object("raw", key, io.BytesIO(body), len(body))
    etag = s3.stat_object("raw", key).etag

    [run] = _wait_for_runs(stack, key, 1)
    assert run["parameters"] == {"bucket": "raw", "key": key, "etag": etag}
    deployment = prefect_request("GET", f"{stack.prefect_api_url}/deployments/{run['deployment_id']}").json()
    assert deployment["name"] == "process-object"


@services
def test_a_redelivered_store_event_starts_one_run_not_two(stack: Settings) -> None:
    s3 = _s3(stack)
    key = f"vendas/redelivered-{uuid.uuid4().hex[:6]}.csv"
    s3.put_object("raw", key, io.BytesIO(b"x\n"), 2)
    etag = s3.stat_object("raw", key).etag
    assert len(_wait_for_runs(stack, key, 1)) == 1  # the SeaweedFS webhook's delivery

    record = {"eventName": "s3:ObjectCreated:Put",
              "s3": {"bucket": {"name": "raw"},
                     "object": {"key": quote_plus(key), "size": 2, "eTag": etag,
                                "sequencer": "180C4F9A2B3D5E6F"}}}
    body = {"EventName": "s3:ObjectCreated:Put", "Key": f"raw/{key}", "Records": [record]}
    headers = {"Authorization": f"Bearer {stack.webhook_token.get_secret_value()}"}
    for _ in range(2):  # MinIO delivers at least once: the same event twice
        assert httpx.post(f"{stack.relay_url}/minio/events", json=body, headers=headers).status_code == 200

    # the store's own delivery and both MinIO deliveries are one object version: one event id
    assert len(_wait_for_runs(stack, key, 3, timeout=5)) == 1


def _prefect_snapshot(api: str) -> dict[str, Any]:
    """Deployments and automations as a user sees them (no timestamps, no automation ids)."""
    deployments = {
        d["name"]: {
            "id": d["id"],
            "entrypoint": d["entrypoint"],
            "work_pool_name": d["work_pool_name"],
            "parameters": d["parameters"],
            "pull_steps": d["pull_steps"],
            "paused": d["paused"],
            "tags": d["tags"],
            "schedules": [(s["schedule"], s["active"]) for s in d["schedules"]],
        }
        for d in prefect_request("POST", f"{api}/deployments/filter", json={}).json()
    }
    automations = sorted(
        json.dumps(
            {"name": a["name"], "enabled": a["enabled"],
             "trigger": {k: v for k, v in a["trigger"].items() if k != "id"},
             "actions": a["actions"]},
            sort_keys=True,
        )
        for a in prefect_request("POST", f"{api}/automations/filter", json={}).json()
    )
    return {"deployments": deployments, "automations": automations}


def _api(method: str, url: str, **kwargs: Any) -> Any:
    response = httpx.request(method, url, timeout=10, **kwargs)
    assert response.is_success, f"{method} {url}: {response.status_code} {response.text[:500]}"
    return response.json() if response.content else None


def _create_orphan_automation(api: str) -> str:
    """A deployment with one of this project's trigger automations (the name and description
    prefect.yaml gives it), then the deployment deleted (as `prefect deployment delete`
    would): the automation stays behind. Returns its id."""
    from deployments.apply import project_automations

    flow = _api("POST", f"{api}/flows/", json={"name": "orphan-test"})
    deployment = _api("POST", f"{api}/deployments/", json={"name": "orphan", "flow_id": flow["id"]})
    name, description = sorted(project_automations(REPO_ROOT / "prefect.yaml"))[0]
    created = _api(
        "POST",
        f"{api}/automations/",
        json={
            "name": name,
            "description": description,
            "trigger": {"type": "event", "match": {"prefect.resource.id": "never.*"},
                        "expect": ["never.happens"], "posture": "Reactive", "threshold": 1,
                        "within": 0},
            "actions": [{"type": "run-deployment", "source": "selected",
                         "deployment_id": deployment["id"], "parameters": {}}],
        },
    )
    _api("DELETE", f"{api}/deployments/{deployment['id']}")
    return str(created["id"])


@services
def test_up_again_starts_nothing_redeploys_identically_and_removes_orphan_automations(
    stack: Settings,
) -> None:
    api = stack.prefect_api_url
    before = _prefect_snapshot(api)
    assert set(before["deployments"]) == declared_deployments() >= {"process-object", "backfill", "reconcile"}
    orphan = _create_orphan_automation(api)
    assert httpx.get(f"{api}/automations/{orphan}", timeout=10).status_code == 200

    assert ivi_stack.start(stack) == []

    after = _prefect_snapshot(api)
    assert after == before  # same deployments (same ids), same triggers
    assert httpx.get(f"{api}/automations/{orphan}", timeout=10).status_code == 404  # the orphan is gone
    reconcile = after["deployments"]["reconcile"]
    assert reconcile["schedules"] == [({"cron": "*/5 * * * *", "timezone": "UTC", "day_or": True}, True)]
    assert reconcile["parameters"] == {"bucket": "raw", "prefix": "", "force": False}


@services
def test_secrets_are_in_blocks_not_in_deployments_or_logs(stack: Settings) -> None:
    api = stack.prefect_api_url
    secrets = [stack.webhook_token.get_secret_value(), stack.s3_secret_key.get_secret_value(),
               stack.postgres_password.get_secret_value()]
    deployments = prefect_request("POST", f"{api}/deployments/filter", json={}).text
    logs = "".join(p.read_text(errors="replace") for p in (stack.data_dir / "logs").glob("*.log"))
    for secret in secrets:
        assert secret not in deployments
        assert secret not in logs
    block = prefect_request("GET", f"{api}/block_types/slug/minio-credentials/block_documents/name/minio-credentials").json()
    assert block["data"]["minio_root_user"] == stack.s3_access_key
    assert block["data"]["minio_root_password"] != stack.s3_secret_key.get_secret_value()  # obfuscated


def test_up_refuses_a_busy_port_with_a_clear_message_and_starts_nothing(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.seaweed_filer_port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"port\(s\) already in use.*filer.port={settings.seaweed_filer_port}"):
            ivi_stack.start(settings)
    assert list(tmp_path.glob("pids/*.pid")) == []


def test_every_default_port_is_below_the_kernels_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default port in the ephemeral range can be held by a closed outgoing connection's
    TIME_WAIT for a minute, and `ivi up` refuses it: `make demo` right after `make test`
    failed so on PostgreSQL's old 55432."""
    for name in [name for name in os.environ if name.startswith("IVI_")]:
        monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    ports = {name: getattr(defaults, name) for name in Settings.model_fields if name.endswith("_port")}
    ports |= defaults.seaweed_grpc_ports
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    lowest_ephemeral = int(range_file.read_text().split()[0]) if range_file.exists() else 32768
    assert "postgres_port" in ports and "admin.port.grpc" in ports
    assert {name: port for name, port in ports.items() if port >= lowest_ephemeral} == {}
    assert len(set(ports.values())) == len(ports), ports  # and no two services share one


def test_up_refuses_to_start_without_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = isolated_settings(tmp_path, webhook_token="", s3_secret_key="")
    assert ivi_stack.up(settings) == 1
    assert "IVI_S3_SECRET_KEY, IVI_WEBHOOK_TOKEN not set" in capsys.readouterr().err


def test_env_file_is_created_once_with_fresh_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    example = REPO_ROOT / ".env.example"
    assert ivi_stack.ensure_env_file(env_file, example) is True
    first = env_file.read_text()
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert len(settings.webhook_token.get_secret_value()) >= 32
    assert len(settings.metrics_token.get_secret_value()) >= 32
    assert settings.metrics_token != settings.webhook_token
    assert len(settings.powerbi_standin_admin_token.get_secret_value()) >= 32
    assert len(settings.s3_secret_key.get_secret_value()) >= 30
    assert len(settings.postgres_password.get_secret_value()) >= 32
    assert len(settings.console_password.get_secret_value()) >= 16
    assert len(settings.console_session_secret.get_secret_value()) >= 32
    assert settings.s3_access_key.startswith("ivi-")
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert ivi_stack.ensure_env_file(env_file, example) is False
    assert env_file.read_text() == first
    other = tmp_path / "other.env"
    ivi_stack.ensure_env_file(other, example)
    assert Settings(_env_file=other).webhook_token != settings.webhook_token  # type: ignore[call-arg]


def test_an_older_env_file_gets_the_secrets_it_lacks_and_keeps_everything_else(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("IVI_S3_SECRET_KEY=kept\nIVI_WEBHOOK_TOKEN=\nIVI_S3_ACCESS_KEY=ivi-kept")
    assert ivi_stack.add_missing_secrets(env_file) == [
        "IVI_METRICS_TOKEN", "IVI_POWERBI_STANDIN_ADMIN_TOKEN", "IVI_POSTGRES_PASSWORD", "IVI_CONSOLE_PASSWORD",
        "IVI_CONSOLE_SESSION_SECRET",
    ]
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert len(settings.postgres_password.get_secret_value()) >= 32
    assert settings.s3_secret_key.get_secret_value() == "kept"
    assert settings.webhook_token.get_secret_value() == ""  # present but empty: left alone
    assert ivi_stack.add_missing_secrets(env_file) == []
    assert ivi_stack.add_missing_secrets(tmp_path / "absent.env") == []


def test_env_example_documents_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
    per_contract = "powerbi_contract_settings"  # filled from IVI_POWERBI_<CONTRACT>_* variables
    settings = {name for name in names if name.startswith("IVI_")}
    assert settings == {f"IVI_{field.upper()}" for field in Settings.model_fields if field != per_contract}
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    compose_own = {"COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}  # read by docker compose itself
    unused = sorted(name for name in names - settings - compose_own if f"${{{name}" not in compose)
    assert not unused, f".env.example documents variables nothing reads: {unused}"
    for setting in ("PUSH_URL", "DATASET_ID"):
        assert f"IVI_POWERBI_<CONTRACT>_{setting}" in text


def test_per_contract_powerbi_settings_come_from_the_environment_and_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "IVI_POWERBI_VENDAS_PUSH_URL=https://dotenv.example/rows?key=k1\n"
        "IVI_POWERBI_CLIENTES_DATASET_ID=ds-1\n"
    )
    monkeypatch.setenv("IVI_POWERBI_VENDAS_PUSH_URL", "https://env.example/rows?key=k2")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    push_url = settings.powerbi_push_url("vendas")
    assert push_url is not None and push_url.get_secret_value() == "https://env.example/rows?key=k2"
    assert settings.powerbi_dataset_id("clientes") == "ds-1"
    assert settings.powerbi_push_url("clientes") is None and settings.powerbi_dataset_id("vendas") is None
    assert "k2" not in repr(settings)
    assert settings.child_env()["IVI_POWERBI_VENDAS_PUSH_URL"] == "https://env.example/rows?key=k2"


def test_child_processes_see_exactly_the_parent_settings(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    script = "import json; from ivi.settings import Settings; print(json.dumps(Settings().child_env()))"
    out = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **settings.child_env()},
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert json.loads(out) == settings.child_env()


# --- SeaweedFS configuration ----------------------------------------------------------------------
def test_weed_mini_gets_every_port_pinned_and_extra_servers_off(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    argv = seaweed.command(settings)
    for flag, port in settings.seaweed_ports.items():
        assert f"-{flag}={port}" in argv
    for off in ("-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-ip.bind=127.0.0.1"):
        assert off in argv


def test_filer_webhook_posts_raw_bucket_creations_to_the_relay_with_the_token(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    seaweed.write_config(settings, f"{settings.relay_url}/seaweedfs/events")
    path = seaweed.home(settings) / "notification.toml"
    webhook = tomllib.loads(path.read_text())["notification"]["webhook"]
    assert webhook["enabled"] is True
    assert webhook["endpoint"] == f"{settings.relay_url}/seaweedfs/events"
    assert webhook["bearer_token"] == settings.webhook_token.get_secret_value()
    assert webhook["event_types"] == ["create", "update"]
    assert webhook["path_prefixes"] == ["/buckets/raw/"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    s3_config = json.loads((seaweed.home(settings) / "s3.json").read_text())
    [credentials] = s3_config["identities"][0]["credentials"]
    assert credentials == {"accessKey": settings.s3_access_key,
                           "secretKey": settings.s3_secret_key.get_secret_value()}


# --- ivi down -------------------------------------------------------------------------------------
def test_down_ends_the_whole_process_group_even_a_process_ignoring_sigterm(tmp_path: Path) -> None:
    files = [ServiceFiles.under(tmp_path, name) for name in ("polite", "stubborn")]
    polite = spawn(files[0], ["sh", "-c", "sleep 60 & sleep 60 & wait"], env=dict(os.environ), cwd=tmp_path)
    stubborn = spawn(
        files[1], [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
        env=dict(os.environ), cwd=tmp_path,
    )
    time.sleep(0.5)
    everything = [polite, *polite.children(recursive=True), stubborn]
    assert len(everything) >= 4

    assert stop(files, timeout=1) == ["polite", "stubborn"]

    _, alive = psutil.wait_procs(everything, timeout=3)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    assert all(running(f) is None and not f.pid_file.exists() for f in files)
    assert stop(files) == []


def test_a_stale_pid_file_is_not_mistaken_for_a_running_service(tmp_path: Path) -> None:
    files = ServiceFiles.under(tmp_path, "ghost")
    files.pid_file.parent.mkdir(parents=True)
    files.pid_file.write_text(f"{os.getpid()}\n12345.0\n")  # our pid, another start time
    assert running(files) is None
    assert stop([files]) == []  # and this test process was not signalled


def test_down_stops_what_a_dead_service_left_behind(tmp_path: Path) -> None:
    files = ServiceFiles.under(tmp_path, "leader-died")
    leader = spawn(files, ["sh", "-c", "sleep 60 & exit 0"], env=dict(os.environ), cwd=tmp_path)
    time.sleep(0.5)
    leftovers = [p for p in psutil.process_iter() if _pgid(p) == leader.pid and p.pid != leader.pid]
    assert leftovers, "the background sleep should outlive its shell"

    assert stop([files], timeout=2) == ["leader-died"]

    _, alive = psutil.wait_procs(leftovers, timeout=3)
    assert alive == []


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (OSError, psutil.Error):
        return None


def test_down_knows_every_service() -> None:
    waves = [name for wave in ivi_stack.STOP_WAVES for name in wave]
    assert sorted(waves) == sorted(service.name for service in ivi_stack.SERVICES)


def test_ivi_up_hands_the_standin_its_admin_token_and_only_that_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(standin.ADMIN_TOKEN_ENV, "a-stale-token-from-the-shell")
    with_token = isolated_settings(tmp_path)
    token = with_token.powerbi_standin_admin_token.get_secret_value()
    assert standin.env(with_token)[standin.ADMIN_TOKEN_ENV] == token
    assert with_token.powerbi_standin_admin_headers == {"Authorization": f"Bearer {token}"}
    without = with_token.model_copy(update={"powerbi_standin_admin_token": SecretStr("")})
    assert standin.ADMIN_TOKEN_ENV not in standin.env(without)
    assert without.powerbi_standin_admin_headers == {}
