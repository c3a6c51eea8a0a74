"""docker-compose.yml and its image, checked without Docker.

No Docker engine runs in CI, so what `docker compose config` and a first `up` would catch is
checked here: the file parses, every path and variable it names exists, the start-up order
holds, the worker scales, MinIO's webhook reaches the relay with a token the relay accepts,
and each container's settings point at the other services. The settings are read the way the
containers read them: the compose file is interpolated with the values of .env.example (the
secrets filled in), and `ivi.settings.Settings` is built from each container's environment.

The compose-spec JSON schema is not checked: no installed package ships it, and tests do not
download anything.
"""

from __future__ import annotations

import fnmatch
import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from deployments.prewarmed_start import SOCKET_ENV
from ivi import prefect_stack, seaweed, standin
from powerbi_standin.adminauth import ADMIN_TOKEN_ENV, HEALTH_PATH, is_loopback
from ivi import stack as ivi_stack
from ivi.settings import ENV_EXAMPLE_FILE, Settings
from blocks.settings import ENV_PREFIX
from tests.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "infra" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
HEALTHCHECK_SCRIPT = REPO_ROOT / "infra" / "docker" / "healthcheck.py"

# `ivi up` services whose compose counterpart has another name: MinIO replaces SeaweedFS, and
# each worker container runs its own pre-warmed engine.
COUNTERPARTS = {seaweed.SERVICE: "minio", prefect_stack.ENGINE: prefect_stack.WORKER}
MINIO, MINIO_SETUP, SETUP, RELAY = "minio", "minio-setup", "prefect-setup", "relay"
CONSOLE = ivi_stack.CONSOLE
WORKER, SERVER, STANDIN = prefect_stack.WORKER, prefect_stack.SERVER, standin.SERVICE
# Values that must come from `.env` and never have a default in the compose file.
SECRETS = ("IVI_S3_SECRET_KEY", "IVI_WEBHOOK_TOKEN", "POSTGRES_PASSWORD", "IVI_CONSOLE_PASSWORD",
           "IVI_CONSOLE_SESSION_SECRET")
# Variables a container may get that are not fields of Settings: the launcher's own.
NON_SETTINGS_IVI_VARIABLES = {SOCKET_ENV}
MINIO_API_PORT = 9000  # `minio server` listens there unless told otherwise
WEBHOOK_ENV = re.compile(r"^MINIO_NOTIFY_WEBHOOK_([A-Z_]+?)_([A-Z0-9]+)$")
WEBHOOK_SETTINGS = ("ENABLE", "ENDPOINT", "AUTH_TOKEN", "QUEUE_DIR")


# --- compose interpolation (`$$`, `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:?x}`, ...) --
@dataclass(frozen=True)
class Reference:
    """One `${NAME<operator><argument>}` or `$NAME` in a compose value."""

    name: str
    operator: str  # "" for a plain reference, else one of ":-", "-", ":?", "?", ":+", "+"
    argument: str


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is not set: compose refuses to start."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def _tokens(text: str) -> Iterator[str | Reference]:
    """Literal text and references, in order (`$$` is a literal `$`)."""
    index = 0
    while index < len(text):
        dollar = text.find("$", index)
        if dollar < 0:
            yield text[index:]
            return
        yield text[index:dollar]
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            yield "$"
            index = dollar + 2
        elif following == "{":
            end = _closing_brace(text, dollar + 2)
            yield _reference(text[dollar + 2 : end])
            index = end + 1
        elif match := _NAME.match(text, dollar + 1):
            yield Reference(match.group(), "", "")
            index = match.end()
        else:
            yield "$"
            index = dollar + 1


def _closing_brace(text: str, start: int) -> int:
    depth, index = 1, start
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth, index = depth + 1, index + 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _reference(body: str) -> Reference:
    match = _NAME.match(body)
    if match is None:
        raise ValueError(f"not a variable: ${{{body}}}")
    rest = body[match.end() :]
    if not rest:
        return Reference(match.group(), "", "")
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise ValueError(f"unknown substitution: ${{{body}}}")
    return Reference(match.group(), operator, rest[len(operator) :])


def references(text: str) -> Iterator[Reference]:
    """Every variable `text` names, those inside defaults included."""
    for token in _tokens(text):
        if isinstance(token, Reference):
            yield token
            yield from references(token.argument)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` as compose interpolates it with the variables `env`."""
    return "".join(
        token if isinstance(token, str) else _substitute(token, env) for token in _tokens(text)
    )


def _substitute(ref: Reference, env: Mapping[str, str]) -> str:
    value = env.get(ref.name)
    missing = not value if ref.operator.startswith(":") else value is None
    if ref.operator in ("", ":-", "-"):
        return interpolate(ref.argument, env) if missing and ref.operator else value or ""
    if ref.operator in (":?", "?"):
        if missing:
            raise MissingVariable(f"{ref.name}: {ref.argument}")
        return value or ""
    return "" if missing else interpolate(ref.argument, env)


# --- the files ------------------------------------------------------------------------------
@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def strings(node: object) -> Iterator[str]:
    """Every string value of a parsed YAML document (compose interpolates values only)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def documented_variables() -> set[str]:
    """`VAR=` and `# VAR=` lines of .env.example."""
    pattern = re.compile(r"^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE_FILE.read_text(encoding="utf-8")))


def example_env() -> dict[str, str]:
    """What `.env` holds after `cp .env.example .env` and filling in the secrets."""
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE_FILE.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            env[name.strip()] = value.strip()
    env.update({name: f"{name.lower()}-for-tests" for name in SECRETS})
    return env


def environment(service: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The service's interpolated `environment:` (what its process sees, besides env_file)."""
    raw = services()[service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    source = example_env() if env is None else env
    return {name: interpolate(str(value), source) for name, value in raw.items()}


def command(service: str) -> list[str]:
    raw = services()[service]["command"]
    return [interpolate(part, example_env()) for part in (raw.split() if isinstance(raw, str) else raw)]


def container_settings(service: str) -> Settings:
    """Settings as the service's container builds them: its IVI_* variables, no `.env`."""
    values = {
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in environment(service).items()
        if name.startswith(ENV_PREFIX) and value  # env_ignore_empty, as in Settings
        and name.removeprefix(ENV_PREFIX).lower() in Settings.model_fields
    }
    return Settings(_env_file=None, **values)


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def as_invoked(argv: list[str]) -> list[str]:
    """`python -m module args` and `module args` both as `[module, args...]`."""
    if Path(argv[0]).name.startswith("python") and argv[1:2] == ["-m"]:
        return argv[2:]
    return argv


def depends_on(service: str) -> dict[str, dict[str, Any]]:
    raw = services()[service].get("depends_on") or {}
    if isinstance(raw, list):
        return {name: {"condition": "service_started"} for name in raw}
    return raw


def is_one_shot(service: str) -> bool:
    return str(services()[service].get("restart", "no")) == "no"


def published(service: str) -> list[tuple[str, int]]:
    """(host side, container port) of every published port, uninterpolated host side."""
    result = []
    for entry in services()[service].get("ports", []):
        host, _, container = str(entry).rpartition(":")
        result.append((host, int(container)))
    return result


def listening_port(service: str) -> int:
    """The port the service's own command listens on."""
    if service == MINIO:
        return MINIO_API_PORT
    return int(option(command(service), "--port"))


def healthcheck_url(service: str) -> str | None:
    test = services()[service].get("healthcheck", {}).get("test", [])
    return test[2] if test[:2] == ["CMD", "ivi-healthcheck"] else None


# --- what `ivi up` runs has a counterpart ---------------------------------------------------
def test_every_service_of_ivi_up_has_a_compose_counterpart() -> None:
    missing = [
        service.name
        for service in ivi_stack.SERVICES
        if COUNTERPARTS.get(service.name, service.name) not in services()
    ]
    assert not missing, f"`ivi up` runs {missing} and docker-compose.yml has no counterpart"


def test_the_relay_runs_as_ivi_up_runs_it_listening_on_all_interfaces() -> None:
    settings = container_settings(RELAY)
    assert settings.relay_host == "0.0.0.0", "the relay must listen on 0.0.0.0 in its container"
    assert command(RELAY) == ["python", *ivi_stack.relay_command(settings)[1:]]


def test_the_console_runs_as_ivi_up_runs_it_with_links_a_browser_on_the_host_can_follow() -> None:
    settings = container_settings(CONSOLE)
    assert settings.console_host == "0.0.0.0"
    assert command(CONSOLE) == ["python", *ivi_stack.console_command(settings)[1:]]
    env = example_env()
    host_view = Settings(_env_file=None, s3_host=env["IVI_S3_HOST"], s3_port=env["IVI_S3_PORT"],
                         prefect_host=env["IVI_PREFECT_HOST"], prefect_port=env["IVI_PREFECT_PORT"])
    assert settings.public_s3_url == host_view.s3_endpoint  # MinIO checks the signed host
    assert settings.public_prefect_url == host_view.prefect_ui_url
    assert settings.s3_endpoint == "http://minio:9000"
    assert settings.console_password.get_secret_value() and settings.console_session_secret.get_secret_value()
    assert depends_on(CONSOLE)[SETUP]["condition"] == "service_completed_successfully"


def test_the_prefect_server_runs_as_ivi_up_runs_it() -> None:
    argv = command(SERVER)
    settings = Settings(_env_file=None, prefect_host="0.0.0.0", prefect_port=listening_port(SERVER))
    assert as_invoked(argv) == as_invoked(prefect_stack.server_command(settings))
    assert container_settings(WORKER).prefect_port == listening_port(SERVER)


def test_the_standin_runs_as_ivi_up_runs_it_on_all_interfaces() -> None:
    argv = command(STANDIN)
    settings = Settings(_env_file=None, data_dir=Path("/data"), powerbi_port=listening_port(STANDIN))
    expected = as_invoked(standin.command(settings))
    expected[expected.index("--host") + 1] = "0.0.0.0"
    assert argv == ["python", "-m", *expected]
    mounts = [str(volume).split(":")[1] for volume in services()[STANDIN].get("volumes", [])]
    assert any(argv[argv.index("--db") + 1].startswith(f"{mount}/") for mount in mounts), (
        "the stand-in's database must live on a volume"
    )


def test_each_worker_runs_a_process_worker_of_the_pool_and_its_prewarmed_engine() -> None:
    script = command(WORKER)[-1]
    ivi_worker = as_invoked(prefect_stack.worker_command(Settings(_env_file=None)))
    engine = as_invoked(prefect_stack.engine_command(Settings(_env_file=None)))
    assert command(WORKER)[:2] == ["sh", "-c"]
    assert f"python -m {engine[0]} \"${SOCKET_ENV}\" &" in script
    worker_start = " ".join(ivi_worker[: ivi_worker.index("--pool")])  # `prefect worker start`
    assert re.search(
        rf"exec {worker_start} --pool \"\$IVI_WORK_POOL\" --type {option(ivi_worker, '--type')}\b",
        script,
    ), script
    assert "--name" not in script, "a fixed worker name would be shared by every replica"
    assert environment(WORKER)["IVI_WORK_POOL"] == environment(SETUP)["IVI_WORK_POOL"]
    assert environment(SETUP)["IVI_WORK_POOL_TYPE"] == option(ivi_worker, "--type")


def test_setup_applies_the_prefect_configuration_as_ivi_up_does() -> None:
    assert as_invoked(command(SETUP)) == ["deployments.apply"]
    assert (REPO_ROOT / "deployments" / "apply.py").is_file()


def test_minio_setup_creates_the_buckets_ivi_up_creates() -> None:
    script = command(MINIO_SETUP)[-1]
    env = environment(MINIO_SETUP)
    expected = Settings(_env_file=None).buckets
    for role, bucket in expected.items():
        variable = f"IVI_{role.upper()}_BUCKET"
        assert env[variable] == bucket
        assert f'"ivi/${variable}"' in script.split("mc mb", 1)[1].splitlines()[0]


# --- paths and variables ----------------------------------------------------------------------
def test_every_path_the_compose_file_names_exists() -> None:
    paths: list[Path] = []
    for name, service in services().items():
        build = service.get("build")
        if build is not None:
            context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
            paths.append(context)
            if isinstance(build, dict):
                paths.append(context / build.get("dockerfile", "Dockerfile"))
        for entry in service.get("env_file", []):
            entry = {"path": entry} if isinstance(entry, str) else entry
            if entry.get("required", True):
                paths.append(REPO_ROOT / entry["path"])
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                paths.append(REPO_ROOT / source)
            else:
                assert source in (compose().get("volumes") or {}), f"{name}: undeclared volume {source}"
    assert DOCKERFILE in paths, "the Python services are built from infra/docker/Dockerfile"
    missing = [str(path) for path in paths if not path.exists()]
    assert not missing, f"docker-compose.yml names paths that do not exist: {missing}"


def test_every_variable_the_compose_file_reads_is_documented_in_env_example() -> None:
    used = {ref.name for text in strings(compose()) for ref in references(text)}
    assert {"IVI_S3_SECRET_KEY", "IVI_WEBHOOK_TOKEN"} <= used
    undocumented = sorted(used - documented_variables())
    assert not undocumented, f"not documented in .env.example: {undocumented}"


def test_compose_profiles_is_documented_for_the_standin() -> None:
    assert example_env().get("COMPOSE_PROFILES") in {"standin", ""}
    assert "COMPOSE_PROFILES" in documented_variables()


def test_secrets_are_required_and_never_have_a_default() -> None:
    for text in strings(compose()):
        for ref in references(text):
            if ref.name in SECRETS:
                assert ref.operator == ":?", f"${{{ref.name}}} must be `${{{ref.name}:?...}}`"
    with pytest.raises(MissingVariable):
        without_token = {k: v for k, v in example_env().items() if k != "IVI_WEBHOOK_TOKEN"}
        environment(SETUP, without_token)


def test_compose_defaults_are_the_settings_defaults() -> None:
    """`${IVI_X:-default}` must say what Settings would use when `.env` leaves IVI_X out."""
    checked = 0
    for text in strings(compose()):
        for ref in references(text):
            field_name = ref.name.removeprefix(ENV_PREFIX).lower()
            if ref.name.startswith(ENV_PREFIX) and ref.operator == ":-":
                field = Settings.model_fields[field_name]
                value = TypeAdapter(field.annotation).validate_python(ref.argument)
                assert value == field.default, (
                    f"{ref.name}: compose says {ref.argument!r}, Settings {field.default!r}"
                )
                checked += 1
    assert checked


def test_every_ivi_variable_set_in_a_container_is_a_setting() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    unknown = {
        f"{service}: {name}"
        for service in services()
        for name in environment(service)
        if name.startswith(ENV_PREFIX) and name not in fields | NON_SETTINGS_IVI_VARIABLES
    }
    assert not unknown, f"not fields of ivi.settings.Settings (typo, or a missing field): {sorted(unknown)}"


# --- order and health ---------------------------------------------------------------------
def test_depends_on_names_services_with_conditions_they_can_meet() -> None:
    for name in services():
        for target, spec in depends_on(name).items():
            assert target in services(), f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services()[target], f"{name} waits for {target}'s health"
            elif condition == "service_completed_successfully":
                assert is_one_shot(target), f"{target} must be a one-shot (restart: \"no\")"
            else:
                assert condition == "service_started", condition


def test_long_running_services_have_healthchecks_and_one_shots_do_not() -> None:
    for name, service in services().items():
        assert ("healthcheck" in service) != is_one_shot(name), name


def test_start_up_order() -> None:
    required = {
        (SERVER, "postgres", "service_healthy"),
        (MINIO_SETUP, MINIO, "service_healthy"),
        (SETUP, SERVER, "service_healthy"),
        (SETUP, MINIO, "service_healthy"),
        (SETUP, MINIO_SETUP, "service_completed_successfully"),
        (WORKER, SETUP, "service_completed_successfully"),
        # the relay posts events only once the deployment trigger exists
        (RELAY, SETUP, "service_completed_successfully"),
    }
    for name, target, condition in required:
        assert depends_on(name).get(target, {}).get("condition") == condition, (name, target)
    # and no cycle: every service can be started after the ones it depends on
    started: set[str] = set()
    while len(started) < len(services()):
        ready = {n for n in services() if n not in started and set(depends_on(n)) <= started}
        assert ready, f"depends_on cycle among {set(services()) - started}"
        started |= ready


def test_healthchecks_probe_the_port_the_service_listens_on() -> None:
    probed = 0
    for name in services():
        url = healthcheck_url(name)
        if url is None:
            continue
        port = urlsplit(url).port
        if name == WORKER:
            assert port == int(environment(WORKER)["PREFECT_WORKER_WEBSERVER_PORT"])
            assert "--with-healthcheck" in command(WORKER)[-1]
        else:
            assert port == listening_port(name), name
        probed += 1
    assert probed >= 4


def test_published_ports_reach_the_port_the_service_listens_on() -> None:
    for name in (SERVER, RELAY, STANDIN, MINIO, CONSOLE):
        host_side = [host for host, container in published(name) if container == listening_port(name)]
        assert host_side, f"{name}: nothing published to its port {listening_port(name)}"
        # the host side is the `.env` port (the host's view), bound to BIND_ADDRESS
        assert all(
            {ref.name for ref in references(host)} & {"BIND_ADDRESS"} for host in host_side
        ), host_side


# --- scaling ---------------------------------------------------------------------------------
def test_the_worker_scales() -> None:
    worker = services()[WORKER]
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker, f"`--scale worker=4` fails with a fixed {key}"


def test_no_worker_replica_mounts_anything_another_replica_sees() -> None:
    """The version lock and Prefect's results (the Power BI batch cache) live in the object
    store: a replica keeps nothing another one needs, so none shares a volume or host path."""
    worker = services()[WORKER]
    assert "volumes_from" not in worker
    shared = [v for v in worker.get("volumes", []) if (v.get("type") if isinstance(v, dict) else "") != "tmpfs"]
    assert not shared, f"the worker mounts {shared}: a volume every replica would share"
    data_dir = PurePosixPath(environment(WORKER)[f"{ENV_PREFIX}DATA_DIR"])
    socket = PurePosixPath(environment(WORKER)[SOCKET_ENV])
    assert data_dir.is_relative_to("/tmp") and socket.is_relative_to("/tmp"), "per container"
    used = {str(v).split(":")[0] for service in services().values() for v in service.get("volumes", [])}
    assert set(compose()["volumes"]) <= used, "a named volume no service mounts"


def test_setup_saves_the_store_blocks_for_the_store_the_workers_reach() -> None:
    """`python -m deployments.apply` (prefect-setup) saves `minio-credentials` and `ivi-results`
    from its own settings; the workers' flows load them, and take the version lock in their
    own settings' processed bucket. Both must name the MinIO every replica reaches."""
    from blocks.objectstore import minio_credentials, results_bucket

    assert as_invoked(command(SETUP)) == ["deployments.apply"]
    setup, worker = container_settings(SETUP), container_settings(WORKER)
    credentials = minio_credentials(setup)
    assert credentials.aws_client_parameters.endpoint_url == worker.s3_endpoint
    assert urlsplit(worker.s3_endpoint).hostname == MINIO
    assert urlsplit(worker.s3_endpoint).port == MINIO_API_PORT
    assert credentials.aws_client_parameters.use_ssl == worker.s3_secure
    assert credentials.region_name == worker.s3_region == environment(MINIO)["MINIO_SITE_REGION"]
    # the lock (worker's settings) and the results (setup's block) in the same bucket
    assert results_bucket(credentials, setup).bucket_name == worker.processed_bucket
    assert worker.processed_bucket == environment(MINIO_SETUP)["IVI_PROCESSED_BUCKET"]
    # the keys saved into the block are MinIO's
    minio = environment(MINIO)
    assert credentials.minio_root_user == minio["MINIO_ROOT_USER"]
    assert credentials.minio_root_password.get_secret_value() == minio["MINIO_ROOT_PASSWORD"]


def test_flows_run_from_the_directory_prefect_deploy_ran_in() -> None:
    workdir = re.search(r"^WORKDIR\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert workdir is not None
    assert services()[SETUP]["working_dir"] == services()[WORKER]["working_dir"] == workdir.group(1)
    assert services()[SETUP]["image"] == services()[WORKER]["image"]


# --- MinIO -> relay ----------------------------------------------------------------------------
def webhook_settings() -> dict[str, dict[str, str]]:
    """MINIO_NOTIFY_WEBHOOK_<SETTING>_<ID> of the MinIO service, by target id."""
    targets: dict[str, dict[str, str]] = {}
    for name, value in environment(MINIO).items():
        if match := WEBHOOK_ENV.match(name):
            targets.setdefault(match.group(2), {})[match.group(1)] = value
    return targets


def minio_authorization(auth_token: str) -> str:
    """The Authorization header MinIO sends for `auth_token` (internal/event/target/webhook.go:
    one word gets `Bearer ` in front, `<scheme> <token>` goes as it is)."""
    fields = auth_token.split()
    return f"Bearer {auth_token}" if len(fields) == 1 else auth_token


def test_minio_webhook_targets_the_relay_with_a_persistent_queue() -> None:
    targets = webhook_settings()
    assert list(targets) == ["PRIMARY"]
    target = targets["PRIMARY"]
    assert set(WEBHOOK_SETTINGS) <= set(target), f"missing: {set(WEBHOOK_SETTINGS) - set(target)}"
    assert target["ENABLE"] == "on"
    endpoint = urlsplit(target["ENDPOINT"])
    assert endpoint.hostname == RELAY and endpoint.port == listening_port(RELAY)
    assert endpoint.port == container_settings(RELAY).relay_port
    from relay.app import create_app

    routes = {getattr(route, "path", "") for route in create_app(container_settings(RELAY)).routes}
    assert endpoint.path in routes
    queue_dir = PurePosixPath(target["QUEUE_DIR"])
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in services()[MINIO]["volumes"]}
    assert str(queue_dir) in mounts and mounts[str(queue_dir)] in compose()["volumes"], (
        "the event queue must survive a restart of the MinIO container"
    )
    data_dir = command(MINIO)[command(MINIO).index("server") + 1]
    assert not queue_dir.is_relative_to(data_dir), "a directory under MinIO's data dir is a bucket"


def test_the_relay_accepts_the_token_minio_sends() -> None:
    from relay.app import create_app

    header = minio_authorization(webhook_settings()["PRIMARY"]["AUTH_TOKEN"])
    with TestClient(create_app(container_settings(RELAY))) as client:
        assert client.head("/minio/events", headers={"Authorization": header}).status_code == 200
        wrong = header[:-1] + ("x" if header[-1] != "x" else "y")
        assert client.head("/minio/events", headers={"Authorization": wrong}).status_code == 401


def test_minio_setup_subscribes_the_raw_bucket_idempotently() -> None:
    script = command(MINIO_SETUP)[-1]
    (target_id,) = webhook_settings()
    arn = f"arn:minio:sqs::{target_id}:webhook"
    assert f'mc event add --ignore-existing "ivi/$IVI_RAW_BUCKET" {arn} --event put --suffix .csv' in script
    assert "mc mb --ignore-existing" in script
    alias = re.search(r"mc alias set ivi (\S+)", script)
    assert alias is not None and urlsplit(alias.group(1)).hostname == MINIO
    assert urlsplit(alias.group(1)).port == MINIO_API_PORT
    minio_env, setup_env = environment(MINIO), environment(MINIO_SETUP)
    assert setup_env["IVI_S3_ACCESS_KEY"] == minio_env["MINIO_ROOT_USER"]
    assert setup_env["IVI_S3_SECRET_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]


# --- Power BI stand-in -------------------------------------------------------------------------
def test_the_standin_is_behind_a_profile_and_optional_for_the_setup() -> None:
    assert services()[STANDIN].get("profiles") == ["standin"]
    for name in services():
        spec = depends_on(name).get(STANDIN)
        if spec is not None:
            assert spec.get("required") is False, f"{name} must start without the stand-in"
    assert STANDIN in depends_on(SETUP), "the setup registers the stand-in's datasets"


# --- each container's settings point at the other services --------------------------------
def test_container_settings_point_at_the_compose_services() -> None:
    for name in (SETUP, WORKER, RELAY):
        settings = container_settings(name)
        assert (settings.s3_host, settings.s3_port) == (MINIO, MINIO_API_PORT), name
        assert (settings.prefect_host, settings.prefect_port) == (SERVER, listening_port(SERVER)), name
        assert environment(name).get("PREFECT_API_URL", settings.prefect_api_url) == settings.prefect_api_url
    for name in (SETUP, WORKER):
        standin_url = urlsplit(container_settings(name).powerbi_standin_url)
        assert (standin_url.hostname, standin_url.port) == (STANDIN, listening_port(STANDIN)), (
            f"{name} reaches the stand-in at {standin_url.netloc}"
        )
    setup = container_settings(SETUP)
    minio_env = environment(MINIO)
    assert (setup.s3_access_key, setup.s3_secret_key.get_secret_value()) == (
        minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"]
    ), "the blocks must hold the keys MinIO was started with"


# --- the image ----------------------------------------------------------------------------------
def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out (last matching pattern wins, `!` re-adds)."""
    ignored = False
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.removeprefix("**/"))
            or fnmatch.fnmatch(PurePosixPath(candidate).name, pattern.removeprefix("**/"))
            for candidate in candidates
        ):
            ignored = not negate
    return ignored


def test_the_build_context_has_what_runs_and_no_local_secrets() -> None:
    needed = [
        "pyproject.toml", "README.md", "prefect.yaml", "contracts/vendas.toml",
        "flows/process_object.py", "relay/app.py", "blocks/register.py",
        "processing/contract.py", "ivi/settings.py", "powerbi_standin/app.py",
        "bench/generate_messy.py", "infra/docker/healthcheck.py",
    ]
    assert [p for p in needed if dockerignored(p) or not (REPO_ROOT / p).exists()] == []
    assert all(dockerignored(p) for p in (".env", ".data/prefect/prefect.db", ".venv/bin/python", ".git/config"))
    assert not dockerignored(".env.example")


def test_the_dockerfile_pins_its_base_runs_as_non_root_and_bakes_no_secret() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert base is not None and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base.group(1)), base
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    for line in re.findall(r"^(?:ENV|ARG)\b.*(?:\\\n.*)*", text, re.MULTILINE):
        assert not re.search(r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY)\w*\s*=", line), line
    assert "pyproject.toml" in text


def test_service_images_are_pinned() -> None:
    for name, service in services().items():
        image = interpolate(service["image"], example_env())
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: {image}"
    for variable in ("MINIO_IMAGE", "MC_IMAGE", "POSTGRES_IMAGE"):
        assert re.search(r":(RELEASE\.\d{4}-|\d+\.\d+)", example_env()[variable]), variable


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (204, 0), (404, 1), (503, 1)])
def test_the_healthcheck_script_passes_only_on_2xx(http_server: str, status: int, exit_code: int) -> None:
    result = subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), f"{http_server}/{status}"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == exit_code, result.stderr


def test_the_healthcheck_script_fails_when_nothing_listens(http_server: str) -> None:
    closed = http_server.rsplit(":", 1)[0] + ":1"
    result = subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), f"{closed}/200"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1


# --- the interpolation used above -------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"), ("$A/x", "a/x"), ("$$A", "$A"), ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""), ("${A:+alt}", "alt"), ("${NOPE:+alt}", ""),
        ("${NOPE:-${A}-x}", "a-x"), ("Bearer ${A:?need A}", "Bearer a"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "a", "EMPTY": ""}) == expected


def test_interpolation_refuses_a_missing_required_variable() -> None:
    with pytest.raises(MissingVariable, match="need B"):
        interpolate("${B:?need B}", {"B": ""})


def test_the_standin_gets_the_admin_token_the_setup_sends_and_its_healthcheck_needs_none() -> None:
    env = {**example_env(), "IVI_POWERBI_STANDIN_ADMIN_TOKEN": "admin-token-for-tests"}
    assert environment(STANDIN, env)[ADMIN_TOKEN_ENV] == "admin-token-for-tests"
    assert environment(SETUP, env)["IVI_POWERBI_STANDIN_ADMIN_TOKEN"] == "admin-token-for-tests"
    url = healthcheck_url(STANDIN)
    assert url is not None and urlsplit(url).path == HEALTH_PATH
    # on 0.0.0.0 the stand-in starts only with a token: compose must hand it one
    assert not is_loopback(option(command(STANDIN), "--host"))


def test_the_relay_groups_a_burst_as_the_embedded_stack_does() -> None:
    """A burst's objects go to one process-objects run per group (relay/dispatch.py), with the
    same group size and window in Compose as in the embedded stack's defaults."""
    relay = container_settings(RELAY)
    defaults = Settings(_env_file=None)
    assert (relay.relay_batch_max, relay.relay_batch_window_seconds) == (
        defaults.relay_batch_max, defaults.relay_batch_window_seconds) == (16, 0.5)
