"""infra/k8s: what an operator relies on when applying the manifests and the Helm values.

Nothing here needs a cluster: `kubectl kustomize` renders each entry point offline, every
rendered document is checked against the Kubernetes API schema, and the pieces that must
agree across files (the relay's port and paths, the Services the Helm charts create, the
settings the pods read, the secrets MinIO and the pipeline share) are checked against each
other, so that editing one side alone fails here rather than in a cluster.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tomllib
import types
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from ivi.settings import Settings
from blocks.settings import ENV_PREFIX, POWERBI_CONTRACT_SETTINGS
from tests.paths import REPO_ROOT
from processing.contract import available_contracts

K8S = REPO_ROOT / "infra" / "k8s"
HELM = K8S / "helm"
# A Kubernetes release kubernetes-validate ships strict schemas for, and that the manifests
# must work on (policy/v1 PDBs, batch/v1 Jobs with TTL, seccompProfile fields).
KUBERNETES_VERSION = "1.32.0"
ENTRY_POINTS = {"root": K8S, "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "ivi-dev", "prod": "ivi"}
SECRET_TEMPLATES = sorted(K8S.glob("overlays/*/*.env.example"))
# What a committed secret value may be: nothing, an <angle-bracketed hint>, or a value that
# says it is a placeholder.
PLACEHOLDER = re.compile(r"^$|^<[^<>]+>$|change-me|REPLACE-ME")
# Secret-template keys whose value is a public identifier another file must repeat (the
# MinIO user name), not a secret.
IDENTIFIER_KEYS = {"IVI_S3_ACCESS_KEY"}
POD_KINDS = {"Deployment", "Job"}


# --- rendering ------------------------------------------------------------------------------
@cache
def render(entry: str) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize` renders for an entry point (fails with its stderr)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (it renders the kustomizations offline)"
    result = subprocess.run(
        [kubectl, "kustomize", str(ENTRY_POINTS[entry])],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {ENTRY_POINTS[entry]} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def find_prefix(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated resource, whose name may carry kustomize's hash suffix."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)]
    assert len(matches) == 1, f"expected one {kind} {prefix}*, found {len(matches)}"
    return matches[0]


def container(pod_owner: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    containers = pod_owner["spec"]["template"]["spec"].get(key, [])
    return next(c for c in containers if c["name"] == name)


def env_value(c: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in c.get("env", []) if e["name"] == name)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as kustomize and `kubectl create secret --from-env-file` read them."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        assert key not in values, f"{path.name}: {key} twice"
        values[key.strip()] = value
    return values


def config_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    return find(docs, "ConfigMap", "ivi-config")["data"]


def secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    secret = find(docs, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def helm_values(name: str) -> dict[str, Any]:
    values = yaml.safe_load((HELM / name).read_text(encoding="utf-8"))
    assert isinstance(values, dict), f"{name} is not a YAML mapping"
    return values


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            yield f"{doc['kind']} {doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def resolve_port(containers: list[dict[str, Any]], port: int | str) -> int:
    """A port given by number or by a container port's name, as a number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for c in containers for p in c.get("ports", []) if p.get("name") == port]
    assert len(numbers) == 1, f"no single container port named {port!r}"
    return numbers[0]


# --- the kustomizations render and are valid Kubernetes -------------------------------------
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_kustomize_renders_offline(entry: str) -> None:
    kinds = {doc["kind"] for doc in render(entry)}
    assert {"Deployment", "Service", "Job", "Role", "RoleBinding", "ConfigMap"} <= kinds


def test_infra_k8s_itself_renders_the_dev_overlay() -> None:
    assert render("root") == render("dev")


@pytest.mark.parametrize("entry", OVERLAYS)
def test_every_rendered_document_is_valid_kubernetes(entry: str) -> None:
    errors = []
    for doc in render(entry):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            errors.append(f"{doc['kind']} {doc['metadata']['name']}: {error}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("entry", OVERLAYS)
def test_everything_lands_in_the_overlays_namespace(entry: str) -> None:
    docs = render(entry)
    assert find(docs, "Namespace", NAMESPACES[entry])
    elsewhere = [
        f"{d['kind']} {d['metadata']['name']}"
        for d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != NAMESPACES[entry]
    ]
    assert not elsewhere
    subjects = find(docs, "RoleBinding", "ivi-worker")["subjects"]
    assert all(s.get("namespace") == NAMESPACES[entry] for s in subjects)


# --- the worker and its permissions ---------------------------------------------------------
def role_allows(role: dict[str, Any], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in role["rules"]
    )


def worker_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Role bound to the service account the worker Deployment runs as."""
    account = find(docs, "Deployment", "ivi-worker")["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = [
        b for b in docs
        if b["kind"] == "RoleBinding"
        and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])
    ]
    assert len(bindings) == 1, f"expected one RoleBinding for {account}"
    assert bindings[0]["roleRef"]["kind"] == "Role"
    return find(docs, "Role", bindings[0]["roleRef"]["name"])


@pytest.mark.parametrize("entry", OVERLAYS)
def test_worker_may_create_jobs_and_watch_their_pods_logs_and_events(entry: str) -> None:
    role = worker_role(render(entry))
    missing = [
        (group or "core", resource, verb)
        for group, resource, verbs in (
            ("batch", "jobs", ("create", "get", "list", "watch", "delete")),
            ("", "pods", ("get", "list", "watch")),
            ("", "pods/log", ("get", "list", "watch")),
            ("", "events", ("get", "list", "watch")),
        )
        for verb in verbs
        if not role_allows(role, group, resource, verb)
    ]
    assert not missing


@pytest.mark.parametrize("entry", OVERLAYS)
def test_worker_may_do_nothing_else(entry: str) -> None:
    allowed = {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get", "list", "watch"},
        ("", "events"): {"get", "list", "watch"},
    }
    extra = [
        (group, resource, verb)
        for rule in worker_role(render(entry))["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb not in allowed.get((group, resource), set())
    ]
    assert not extra, f"more than prefect-kubernetes needs: {extra}"


@pytest.mark.parametrize("entry", OVERLAYS)
def test_worker_starts_a_kubernetes_worker_on_the_configured_pool(entry: str) -> None:
    docs = render(entry)
    worker = container(find(docs, "Deployment", "ivi-worker"), "worker")
    command = worker["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    assert command[command.index("--type") + 1] == "kubernetes"
    assert command[command.index("--pool") + 1] == "$(IVI_WORK_POOL)"
    assert "--no-create-pool-if-not-found" in command  # the setup Job owns the pool's template
    config = config_map(docs)
    assert config["IVI_WORK_POOL"]
    assert config["IVI_WORK_POOL_TYPE"] == "kubernetes"
    observer = env_value(worker, "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES")
    assert observer["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    liveness = worker["livenessProbe"]["httpGet"]
    health_port = int(env_value(worker, "PREFECT_WORKER_WEBSERVER_PORT")["value"])
    assert resolve_port([worker], liveness["port"]) == health_port


# --- the relay ------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", OVERLAYS)
@pytest.mark.parametrize("name", ["relay", "console"])
def test_relay_and_console_probes_hit_healthz_on_the_port_their_service_targets(entry: str, name: str) -> None:
    """(The console's too: both are uvicorn apps with /healthz, host and port from the ConfigMap.)"""
    docs = render(entry)
    relay = find(docs, "Deployment", f"ivi-{name}")
    containers = relay["spec"]["template"]["spec"]["containers"]
    service = find(docs, "Service", f"ivi-{name}")
    assert service["spec"]["selector"].items() <= relay["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    target = resolve_port(containers, port.get("targetPort", port["port"]))
    for probe in ("readinessProbe", "livenessProbe"):
        check = container(relay, name)[probe]["httpGet"]
        assert check["path"] == "/healthz", probe
        assert resolve_port(containers, check["port"]) == target, probe
    # uvicorn listens where the Service sends: its --port is the ConfigMap's IVI_<NAME>_PORT.
    command = container(relay, name)["command"]
    assert command[command.index("--port") + 1] == f"$(IVI_{name.upper()}_PORT)"
    assert int(config_map(docs)[f"IVI_{name.upper()}_PORT"]) == target
    assert config_map(docs)[f"IVI_{name.upper()}_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("entry", OVERLAYS)
def test_the_console_runs_as_ivi_up_runs_it_with_the_store_and_its_sign_in_only(entry: str) -> None:
    from ivi import stack as ivi_stack

    docs = render(entry)
    console = container(find(docs, "Deployment", "ivi-console"), "console")
    settings = settings_from(pod_environment(docs, entry, console))
    expected = ivi_stack.console_command(settings)[1:]
    expected[expected.index("--host") + 1] = "$(IVI_CONSOLE_HOST)"
    expected[expected.index("--port") + 1] = "$(IVI_CONSOLE_PORT)"
    assert console["command"] == ["python", *expected]
    secrets = {e["name"] for e in console["env"] if "valueFrom" in e}
    assert secrets == {"IVI_S3_ACCESS_KEY", "IVI_S3_SECRET_KEY", "IVI_CONSOLE_PASSWORD", "IVI_CONSOLE_SESSION_SECRET"}
    assert not [source for source in console.get("envFrom", []) if "secretRef" in source]
    assert settings.console_https


def relay_routes() -> dict[str, set[str]]:
    from relay.app import create_app

    app = create_app(Settings(webhook_token="test-only-token"))
    methods: dict[str, set[str]] = {}
    for route in app.routes:  # one path may have a route per method (POST, HEAD)
        if hasattr(route, "methods"):
            methods.setdefault(route.path, set()).update(route.methods)
    return methods


def test_the_relay_serves_the_paths_the_cluster_calls() -> None:
    routes = relay_routes()
    assert "GET" in routes["/healthz"]
    environment = helm_values("minio-values.yaml")["environment"]
    endpoint = urlsplit(environment["MINIO_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY"])
    assert "POST" in routes[endpoint.path]


@pytest.mark.parametrize("entry", OVERLAYS)
def test_relay_gets_the_webhook_and_metrics_tokens_and_no_other_secret(entry: str) -> None:
    relay = container(find(render(entry), "Deployment", "ivi-relay"), "relay")
    for name in ("IVI_WEBHOOK_TOKEN", "IVI_METRICS_TOKEN"):
        token = env_value(relay, name)["valueFrom"]["secretKeyRef"]
        assert token == {"name": "ivi-secrets", "key": name}
    secrets = {item["name"] for item in relay.get("env", []) if "secretKeyRef" in item.get("valueFrom", {})}
    assert secrets == {"IVI_WEBHOOK_TOKEN", "IVI_METRICS_TOKEN"}
    assert not [source for source in relay.get("envFrom", []) if "secretRef" in source]


# --- settings and secrets -------------------------------------------------------------------
def setting_key_problem(key: str) -> str | None:
    """Why an IVI_* variable is not a setting of ivi/settings.py (None when it is)."""
    name = key.removeprefix(ENV_PREFIX).lower()
    if name in Settings.model_fields and name != "powerbi_contract_settings":
        return None
    match = re.fullmatch(
        r"powerbi_([a-z0-9_]+?)_(" + "|".join(POWERBI_CONTRACT_SETTINGS) + ")", name
    )
    if match is None:
        return "not a field of ivi.settings.Settings"
    if match.group(1) not in available_contracts():
        return f"no contract named {match.group(1)!r} in contracts/"
    return None


def template_keys() -> list[tuple[str, str]]:
    """(file, key) of the pipeline's ConfigMap and Secret templates (not the charts' Secrets)."""
    files = [K8S / "base" / "config.env", *sorted(K8S.glob("overlays/*/secret.env.example"))]
    keys = [(path.name, key) for path in files for key in read_env_file(path)]
    # Commented examples (`# IVI_POWERBI_TENANT_ID=...`) are settings users will uncomment.
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if m := re.match(r"#\s*(IVI_[A-Z0-9_]+)=", line):
                keys.append((path.name, m.group(1)))
    return keys


def test_config_and_secret_templates_name_only_real_settings() -> None:
    keys = template_keys()
    assert len({k for _, k in keys if k.startswith(ENV_PREFIX)}) > 10
    problems = [
        f"{file}: {key}: {problem}"
        for file, key in keys
        if key.startswith(ENV_PREFIX) and (problem := setting_key_problem(key))
    ]
    assert not problems, "\n".join(problems)
    # Anything else the pods get from these templates is one of Prefect's own settings.
    assert all(key.startswith(("IVI_", "PREFECT_")) for _, key in keys)


def test_secrets_stay_out_of_the_config_map() -> None:
    secret_fields = {
        name for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    config = read_env_file(K8S / "base" / "config.env")
    leaked = [key for key in config if key.removeprefix(ENV_PREFIX).lower() in secret_fields]
    leaked += [key for key in config if key.endswith("_PUSH_URL")]
    assert not leaked


@pytest.mark.parametrize("path", SECRET_TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_secret_templates_hold_only_placeholders(path: Path) -> None:
    values = read_env_file(path)
    assert values
    real = [
        key for key, value in values.items()
        if key not in IDENTIFIER_KEYS and not PLACEHOLDER.search(value)
    ]
    assert not real, f"{path.name}: values that are not placeholders: {real}"


def test_no_secret_manifest_or_password_is_committed() -> None:
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                assert doc.get("kind") != "Secret", f"{path}: a Secret manifest is committed"
    minio = helm_values("minio-values.yaml")
    assert minio["rootUser"] == "" and minio["rootPassword"] == ""
    assert all("secretKey" not in user and user["existingSecret"] for user in minio["users"])
    prefect = helm_values("prefect-server-values.yaml")
    assert "password" not in prefect["postgresql"]["auth"]
    assert prefect["secret"]["create"] is False  # else the chart writes its default password


def test_prod_generates_no_secret() -> None:
    assert not [d for d in render("prod") if d["kind"] == "Secret"]


# --- the Helm values and the manifests agree ------------------------------------------------
def test_helm_values_parse_as_yaml() -> None:
    for path in sorted(HELM.glob("*.yaml")):
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path.name
    assert {p.name for p in HELM.glob("*.yaml")} == {"minio-values.yaml", "prefect-server-values.yaml"}


@pytest.mark.parametrize("entry", OVERLAYS)
def test_minio_sends_its_events_to_the_relay_service(entry: str) -> None:
    docs = render(entry)
    environment = helm_values("minio-values.yaml")["environment"]
    targets = {
        name.removeprefix("MINIO_NOTIFY_WEBHOOK_ENDPOINT_"): url
        for name, url in environment.items() if name.startswith("MINIO_NOTIFY_WEBHOOK_ENDPOINT_")
    }
    assert len(targets) == 1
    ((target, url),) = targets.items()
    assert environment[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{target}"] == "on"
    endpoint = urlsplit(url)
    service = find(docs, "Service", endpoint.hostname or "")
    assert endpoint.port in {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= (
        find(docs, "Deployment", "ivi-relay")["spec"]["template"]["metadata"]["labels"].items()
    )
    # The raw bucket is subscribed to that very target (the ARN's id is the variables' suffix).
    raw = config_map(docs)["IVI_RAW_BUCKET"]
    subscriptions = [
        mc_arguments(c["command"]) for c in helm_values("minio-values.yaml")["customCommands"]
        if c["command"].startswith("event add")
    ]
    assert [args for args, _ in subscriptions] == [
        ["event", "add", f"myminio/{raw}", f"arn:minio:sqs::{target}:webhook"]
    ]
    assert "put" in subscriptions[0][1]["--event"].split(",")


def mc_arguments(command: str) -> tuple[list[str], dict[str, str]]:
    """An `mc` command's positional arguments and its flags (flags with a value keep it)."""
    with_value = {"--event", "--prefix", "--suffix"}
    words = command.split()
    positional: list[str] = []
    flags: dict[str, str] = {}
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            flags[word] = words.pop(0) if word in with_value else ""
        else:
            positional.append(word)
    return positional, flags


def test_minio_creates_the_buckets_and_user_the_pipeline_uses() -> None:
    minio = helm_values("minio-values.yaml")
    config = config_map(render("dev"))
    assert {b["name"] for b in minio["buckets"]} == {
        config["IVI_RAW_BUCKET"], config["IVI_PROCESSED_BUCKET"], config["IVI_QUARANTINE_BUCKET"],
        config["IVI_LAKE_BUCKET"],
    }
    assert (minio["fullnameOverride"], str(minio["service"]["port"])) == (
        config["IVI_S3_HOST"], config["IVI_S3_PORT"]
    )
    (user,) = minio["users"]
    for template in K8S.glob("overlays/*/secret.env.example"):
        values = read_env_file(template)
        assert values["IVI_S3_ACCESS_KEY"] == user["accessKey"], template
        assert user["existingSecretKey"] in values, template
    dev_secret = secret_data(render("dev"), user["existingSecret"])
    assert dev_secret["IVI_S3_ACCESS_KEY"] == user["accessKey"]
    assert len(dev_secret[user["existingSecretKey"]]) >= 8  # MinIO's minimum secret key


def test_minio_and_the_relay_share_one_webhook_token_in_dev() -> None:
    docs = render("dev")
    minio = helm_values("minio-values.yaml")
    config_env = secret_data(docs, minio["extraSecret"])["config.env"]
    minio_env = dict(
        line.split("=", 1) for line in config_env.splitlines()
        if line.strip() and not line.startswith("#")
    )
    relay_token = secret_data(docs, "ivi-secrets")["IVI_WEBHOOK_TOKEN"]
    assert minio_env["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_PRIMARY"] == relay_token


def test_prefect_server_values_match_the_api_the_pods_call() -> None:
    prefect = helm_values("prefect-server-values.yaml")
    config = config_map(render("dev"))
    assert prefect["fullnameOverride"] == config["IVI_PREFECT_HOST"]
    assert str(prefect["service"]["port"]) == config["IVI_PREFECT_PORT"]
    api = f"http://{config['IVI_PREFECT_HOST']}:{config['IVI_PREFECT_PORT']}/api"
    assert config["PREFECT_API_URL"] == api
    assert prefect["server"]["uiConfig"]["prefectUiApiUrl"].endswith("/api")
    pinned = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text(encoding="utf-8"))["prefect-version"]
    assert prefect["global"]["prefect"]["image"]["prefectTag"].startswith(f"{pinned}-python")


def test_prefect_database_secret_is_consistent_in_dev() -> None:
    prefect = helm_values("prefect-server-values.yaml")
    auth = prefect["postgresql"]["auth"]
    db = secret_data(render("dev"), auth["existingSecret"])
    url = urlsplit(db["connection-string"])
    assert url.scheme == "postgresql+asyncpg"
    assert (url.username, url.password) == (auth["username"], db["password"])
    assert url.hostname == f"{prefect['fullnameOverride']}-postgresql.{NAMESPACES['dev']}"
    assert url.path == f"/{auth['database']}"


# --- the flow runs' job template ------------------------------------------------------------
def shipped_work_pool_script(docs: list[dict[str, Any]]) -> tuple[types.ModuleType, dict[str, Any]]:
    """configure_work_pool.py and the template, as the setup Job mounts them."""
    data = find_prefix(docs, "ConfigMap", "ivi-work-pool")["data"]
    module = types.ModuleType("configure_work_pool")
    exec(compile(data["configure_work_pool.py"], "configure_work_pool.py", "exec"), module.__dict__)
    return module, json.loads(data["base-job-template.json"])


def render_flow_run_job(template: dict[str, Any]) -> dict[str, Any]:
    """The Job a worker would make from the template's defaults (Prefect's own templating)."""
    from prefect.utilities.templating import apply_values

    defaults = {
        name: spec["default"]
        for name, spec in template["variables"]["properties"].items()
        if spec.get("default") is not None
    }
    job = apply_values(template["job_configuration"]["job_manifest"], {**defaults, "name": "flow-run"})
    pod = job["spec"]["template"]["spec"]
    # prefect-kubernetes refuses a manifest without these, in the pod spec where its default
    # template has them; the API server drops them there (unknown fields) with a warning.
    assert (pod.pop("parallelism"), pod.pop("completions"), pod["restartPolicy"]) == (1, 1, "Never")
    assert [c["name"] for c in pod["containers"]][0] == "prefect-job"
    for c in pod["containers"]:
        # prefect-kubernetes turns the `env` mapping into Kubernetes' list form.
        c["env"] = [{"name": k, "value": v} for k, v in (c.get("env") or {}).items()]
    return job


@pytest.mark.parametrize("entry", OVERLAYS)
def test_flow_runs_get_the_workers_image_and_config(entry: str) -> None:
    docs = render(entry)
    module, template = shipped_work_pool_script(docs)
    setup = find(docs, "Job", "ivi-setup")
    init = container(setup, "work-pool", init=True)
    image = env_value(init, "FLOW_RUN_IMAGE")["value"]
    assert image == container(find(docs, "Deployment", "ivi-worker"), "worker")["image"]
    assert env_value(init, "FLOW_RUN_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"

    job = render_flow_run_job(module.flow_run_template(template, image=image, namespace=NAMESPACES[entry]))
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert job["metadata"]["namespace"] == NAMESPACES[entry]
    pod = job["spec"]["template"]["spec"]
    (run,) = pod["containers"]
    assert run["image"] == image
    assert {"configMapRef": {"name": "ivi-config"}} in run["envFrom"]
    find(docs, "ConfigMap", "ivi-config")  # the name the template uses exists unhashed
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in run["volumeMounts"]}
    # a writable /tmp of the pod's own on a read-only root filesystem; the data dir lies on it
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert run["securityContext"]["readOnlyRootFilesystem"] is True
    assert Path(config_map(docs)["IVI_DATA_DIR"]).is_relative_to("/tmp")
    # Flow runs talk to Prefect and MinIO only: an account no Role is bound to, no API token.
    account = pod["serviceAccountName"]
    find(docs, "ServiceAccount", account)
    bound = [b for b in docs if b["kind"] == "RoleBinding" and any(s["name"] == account for s in b["subjects"])]
    assert not bound
    assert pod["automountServiceAccountToken"] is False


def test_work_pool_setup_refuses_a_template_without_image_or_namespace() -> None:
    module, template = shipped_work_pool_script(render("dev"))
    with pytest.raises(ValueError, match="FLOW_RUN_IMAGE"):
        module.flow_run_template(template, image="", namespace="ivi")
    with pytest.raises(ValueError, match="FLOW_RUN_NAMESPACE"):
        module.flow_run_template(template, image="ghcr.io/x/y:1", namespace="")
    assert template["variables"]["properties"]["image"].get("default") is None  # input untouched


def test_setup_job_applies_the_configuration_with_every_secret() -> None:
    setup = find(render("prod"), "Job", "ivi-setup")
    apply = container(setup, "apply")
    assert apply["command"] == ["python", "-m", "deployments.apply"]
    assert apply["workingDir"] == "/app"  # prefect deploy records it; flow runs start there
    assert {"secretRef": {"name": "ivi-secrets"}} in apply["envFrom"]
    assert setup["spec"]["template"]["spec"]["restartPolicy"] == "Never"


# --- dev and prod shapes --------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "replicas"), [("dev", 1), ("prod", 2)])
def test_replicas_per_overlay(entry: str, replicas: int) -> None:
    docs = render(entry)
    for name in ("ivi-relay", "ivi-worker"):
        assert find(docs, "Deployment", name)["spec"]["replicas"] == replicas, name


def test_prod_pins_one_image_everywhere() -> None:
    images = {c["image"] for _, spec in pod_specs(render("prod"))
              for c in [*spec["containers"], *spec.get("initContainers", [])]}
    assert len(images) == 1
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert "@sha256:" in image or (name and re.fullmatch(r"v?\d+\.\d+\.\d+([.-][\w.]+)?", tag)), image


def test_prod_keeps_a_relay_up_during_disruptions() -> None:
    docs = render("prod")
    (budget,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    relay_labels = find(docs, "Deployment", "ivi-relay")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= relay_labels.items()
    assert budget["spec"]["minAvailable"] == 1


def test_prod_sets_memory_limits_on_every_container() -> None:
    missing = [
        f"{owner}/{c['name']}"
        for owner, spec in pod_specs(render("prod"))
        for c in [*spec["containers"], *spec.get("initContainers", [])]
        if not c.get("resources", {}).get("limits", {}).get("memory")
    ]
    assert not missing


# --- shared state: the object store, never a shared volume -----------------------------------
# Volume sources that belong to one pod. Anything else (a PVC, hostPath, NFS, CSI, Azure File,
# ...) could be seen by another replica or run: a worker keeps nothing another one needs.
POD_LOCAL_VOLUMES = {"emptyDir", "configMap", "secret", "projected", "downwardAPI"}


def flow_run_pod(docs: list[dict[str, Any]], entry: str) -> dict[str, Any]:
    """The pod spec of a flow-run Job, as the worker makes it from the shipped template."""
    module, template = shipped_work_pool_script(docs)
    image = container(find(docs, "Deployment", "ivi-worker"), "worker")["image"]
    job = render_flow_run_job(module.flow_run_template(template, image=image, namespace=NAMESPACES[entry]))
    return job["spec"]["template"]["spec"]


@pytest.mark.parametrize("entry", OVERLAYS)
def test_no_pod_mounts_a_volume_shared_between_replicas_or_runs(entry: str) -> None:
    docs = render(entry)
    assert not [d for d in docs if d["kind"] in {"PersistentVolumeClaim", "PersistentVolume"}]
    pods = [*pod_specs(docs), ("flow-run Job", flow_run_pod(docs, entry))]
    assert any(owner == "Deployment ivi-worker" for owner, _ in pods)
    shared = [
        f"{owner}: volume {volume['name']} ({', '.join(sorted(set(volume) - {'name'}))})"
        for owner, spec in pods
        for volume in spec.get("volumes", [])
        if not set(volume) - {"name"} <= POD_LOCAL_VOLUMES
    ]
    assert not shared, shared


def pod_environment(docs: list[dict[str, Any]], entry: str, c: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom in order, then env. The
    prod overlay generates no Secret: its template (secret.env.example) stands in for it."""
    values: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            values.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            values.update(
                secret_data(docs, name) if entry == "dev"
                else read_env_file(K8S / "overlays" / entry / "secret.env.example")
            )
    for item in c.get("env") or []:
        if "value" in item:
            values[item["name"]] = item["value"]
    return values


def settings_from(values: dict[str, str]) -> Settings:
    fields = {
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in values.items()
        if name.startswith(ENV_PREFIX) and value
        and name.removeprefix(ENV_PREFIX).lower() in Settings.model_fields
    }
    return Settings(_env_file=None, **fields)


@pytest.mark.parametrize("entry", OVERLAYS)
def test_setup_saves_the_store_blocks_for_the_store_every_pod_reaches(entry: str) -> None:
    """The setup Job's `python -m deployments.apply` saves blocks `minio-credentials` and
    `ivi-results` (the results and the Power BI batch cache) from its own settings; a flow-run
    pod loads them and takes the version lock in its own settings' processed bucket. Both must
    name the one MinIO every pod reaches, or the lock and the cache are not shared."""
    from blocks.objectstore import minio_credentials, results_bucket

    docs = render(entry)
    apply = container(find(docs, "Job", "ivi-setup"), "apply")
    assert apply["command"] == ["python", "-m", "deployments.apply"]
    setup = settings_from(pod_environment(docs, entry, apply))
    assert setup.s3_secret_key.get_secret_value(), "the setup Job gets the store's secret key"
    credentials = minio_credentials(setup)
    (run,) = flow_run_pod(docs, entry)["containers"]
    worker = container(find(docs, "Deployment", "ivi-worker"), "worker")
    minio = helm_values("minio-values.yaml")
    for who, c in (("flow run", run), ("worker", worker)):
        pod = settings_from(pod_environment(docs, entry, c))
        assert credentials.aws_client_parameters.endpoint_url == pod.s3_endpoint, who
        assert credentials.aws_client_parameters.use_ssl == pod.s3_secure, who
        assert credentials.region_name == pod.s3_region, who
        assert results_bucket(credentials, setup).bucket_name == pod.processed_bucket, who
    assert urlsplit(setup.s3_endpoint).hostname == minio["fullnameOverride"]
    assert setup.processed_bucket in {b["name"] for b in minio["buckets"]}
    assert setup.s3_access_key == minio["users"][0]["accessKey"]


@pytest.mark.parametrize("entry", OVERLAYS)
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(entry: str) -> None:
    problems = []
    for owner, spec in pod_specs(render(entry)):
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{owner}: runAsNonRoot")
        writable = {m["mountPath"] for c in [*spec["containers"], *spec.get("initContainers", [])]
                    for m in c.get("volumeMounts", [])}
        for c in [*spec["containers"], *spec.get("initContainers", [])]:
            context = c.get("securityContext", {})
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{owner}/{c['name']}: readOnlyRootFilesystem")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{owner}/{c['name']}: allowPrivilegeEscalation")
        if "/tmp" not in writable:
            problems.append(f"{owner}: no writable /tmp")
    assert not problems, problems


def test_docs_page_names_the_commands_an_operator_runs() -> None:
    page = (REPO_ROOT / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    for needle in (
        "kubectl apply -k infra/k8s/overlays/prod",
        "helm install prefect-server",
        "helm install minio",
        "--from-env-file",
        "_ivi/locks/",
        "_ivi/results/",
        f"--version {helm_chart_version('prefect-server-values.yaml')}",
        f"--version {helm_chart_version('minio-values.yaml')}",
    ):
        assert needle in page, needle


def helm_chart_version(values_file: str) -> str:
    """The chart version a values file says it was written for (its header comment)."""
    header = (HELM / values_file).read_text(encoding="utf-8")
    match = re.search(r"--version (\S+)", header)
    assert match, f"{values_file} names no chart version"
    return match.group(1)


def test_contracts_with_a_powerbi_table_have_a_destination_in_every_secret_template() -> None:
    contracts = [
        name for name in available_contracts()
        if "powerbi" in tomllib.loads((REPO_ROOT / "contracts" / f"{name}.toml").read_text(encoding="utf-8"))
    ]
    assert contracts
    for template in K8S.glob("overlays/*/secret.env.example"):
        keys = read_env_file(template)
        config = read_env_file(K8S / "base" / "config.env")
        for name in contracts:
            assert (
                f"IVI_POWERBI_{name.upper()}_PUSH_URL" in keys
                or f"IVI_POWERBI_{name.upper()}_DATASET_ID" in config
            ), f"{template.parent.name}: no Power BI destination for {name} (the setup Job would fail)"


def test_the_relay_groups_a_burst_as_the_embedded_stack_does() -> None:
    """Same group size and window as Compose and the embedded stack (relay/dispatch.py)."""
    config = read_env_file(K8S / "base" / "config.env")
    defaults = Settings(_env_file=None)
    assert (int(config["IVI_RELAY_BATCH_MAX"]), float(config["IVI_RELAY_BATCH_WINDOW_SECONDS"])) == (
        defaults.relay_batch_max, defaults.relay_batch_window_seconds)
