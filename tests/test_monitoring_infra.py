"""The monitoring files, checked without Docker or a cluster: the Compose profile `monitoring`
(Prometheus, Grafana) scrapes what the code serves with the token the services check, the
provisioned dashboard queries only metrics the code exports, and the Kubernetes pods carry
scrape annotations for the port and path they serve /metrics on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ivi import stack as ivi_stack
from ivi.settings import Settings
from metrics.app import create_app as create_exporter_app
from metrics.figures import PipelineMetrics
from powerbi_standin.limits import Limits
from relay.app import create_app as create_relay_app
from relay.metrics import RelayMetrics
from tests.paths import REPO_ROOT
from tests.test_compose import command, container_settings, environment, listening_port, services
from tests.test_k8s import OVERLAYS, config_map, container, env_value, find, render

MONITORING = REPO_ROOT / "infra" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "ivi-pipeline.json"
PROMETHEUS, GRAFANA_SERVICE, RELAY, METRICS = "prometheus", "grafana", "relay", ivi_stack.METRICS
METRIC_NAME = re.compile(r"\bivi_[a-z0-9_]+\b")
# Grafana's variables, as Grafana fills them in before sending a query to Prometheus.
GRAFANA_VARIABLES = {"$contract": ".*", "$__range": "1h"}

# A report with every field the exporter reads, so that every series it can export exists.
FULL_REPORT: dict[str, object] = {
    "status": "processed", "contract": "vendas", "input_rows": 4, "exported_rows": 2,
    "quarantined_rows": 1, "duplicate_rows": 1, "duration_s": 1.5, "powerbi": "pushed",
    "powerbi_rows": 2, "powerbi_posts": 1, "powerbi_throttled": 0, "lake_rows": 2,
}


# --- what the code exports ---------------------------------------------------------------------
@cache
def exported_sample_names() -> frozenset[str]:
    """Every sample name the relay and the exporter can serve (`_total`, `_bucket`...)."""
    pipeline = PipelineMetrics()
    pipeline.count(FULL_REPORT, latency_seconds=3.0)
    pipeline.flow_runs.labels("COMPLETED").set(1)
    names = {
        sample.name
        for registry in (pipeline.registry, RelayMetrics().registry)
        for family in registry.collect()
        for sample in family.samples
    }
    return frozenset(names)


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def expressions(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel.get("targets", [])]


def every_expression() -> list[str]:
    templating = [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return [expr for panel in panels() for expr in expressions(panel)] + templating


def test_every_exported_name_is_the_projects() -> None:
    assert exported_sample_names()
    assert all(name.startswith("ivi_") for name in exported_sample_names())


def test_every_metric_the_dashboard_queries_is_one_the_code_exports() -> None:
    used = {name for expr in every_expression() for name in METRIC_NAME.findall(expr)}
    assert len(used) >= 10
    unknown = sorted(used - exported_sample_names())
    assert not unknown, f"the dashboard queries metrics nothing exports: {unknown}"


def as_prometheus_sends_it(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Prometheus' own checker (Debian package `prometheus`, installed by `make install`)."""
    executable = shutil.which("promtool")
    assert executable, "promtool missing: `make install` installs the Debian package prometheus"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=60)


def check_as_rules(expressions: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` over the expressions as recording rules: PromQL parsed offline."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"ivi:dashboard_query_{number}", "expr": expr} for number, expr in enumerate(expressions)
    ]}]}
    path = directory / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return promtool("check", "rules", str(path))


def test_prometheus_parses_every_dashboard_query(tmp_path: Path) -> None:
    result = check_as_rules([as_prometheus_sends_it(expr) for expr in every_expression()
                             if not expr.startswith("label_values(")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(every_expression()) - 1} rules found" in result.stdout


def test_the_query_check_refuses_a_broken_query(tmp_path: Path) -> None:
    result = check_as_rules(["sum by (contract) (rate(ivi_files_total[5m]) * 60"], tmp_path)
    assert result.returncode != 0


def test_prometheus_reads_the_scrape_configuration() -> None:
    result = promtool("check", "config", "--syntax-only", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = " ".join(every_expression())
    titles = " ".join(panel["title"].lower() for panel in panels())
    assert "files per minute" in titles and "rate(ivi_files_total" in exprs
    assert 'ivi_rows_total{outcome="exported"' in exprs and "by (contract)" in exprs
    assert 'outcome="quarantined"' in exprs and 'outcome="input"' in exprs  # the quarantine rate
    assert "histogram_quantile(0.95, sum by (le) (rate(ivi_upload_to_report_seconds_bucket" in exprs
    assert "ivi_processing_seconds_bucket" in exprs


def test_power_bi_throughput_is_drawn_against_the_documented_limits() -> None:
    """Rows per hour against 1,000,000 and POSTs per minute against 120: the limits the
    stand-in enforces as the service documents them."""
    limits = Limits()

    def red_line(panel: dict[str, Any]) -> float:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return float(next(step["value"] for step in steps if step["color"] == "red"))

    [rows] = [p for p in panels() if any("increase(ivi_powerbi_rows_total" in e and "[1h]" in e for e in expressions(p))]
    [posts] = [p for p in panels() if any("rate(ivi_powerbi_posts_total" in e for e in expressions(p))]
    assert red_line(rows) == limits.rows_per_hour
    assert red_line(posts) == limits.posts_per_minute
    assert any("* 60" in e for e in expressions(posts))  # per minute, as the limit is


def test_every_panel_uses_the_provisioned_data_source() -> None:
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    for panel in panels():
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


# --- the Compose profile ------------------------------------------------------------------------
def mounts(service: str) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts (relative to the repo)."""
    found = {}
    for volume in services()[service].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            found[target] = source
    return found


def test_prometheus_and_grafana_run_only_with_the_monitoring_profile() -> None:
    profiled = {name for name, service in services().items() if "monitoring" in service.get("profiles", [])}
    assert profiled == {PROMETHEUS, GRAFANA_SERVICE}
    assert services()[PROMETHEUS]["profiles"] == ["monitoring"]
    assert "profiles" not in services()[METRICS], "the exporter runs whenever the pipeline does"


def test_the_exporter_runs_as_ivi_up_runs_it_listening_on_all_interfaces() -> None:
    settings = container_settings(METRICS)
    assert settings.metrics_host == "0.0.0.0"
    assert command(METRICS) == ["python", *ivi_stack.metrics_command(settings)[1:]]


def test_the_relay_and_the_exporter_check_the_token_prometheus_sends() -> None:
    for service in (RELAY, METRICS, PROMETHEUS):
        assert services()[service]["environment"]["IVI_METRICS_TOKEN"] == "${IVI_METRICS_TOKEN:-}", service
    script = services()[PROMETHEUS]["command"][0]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    token_files = {job["authorization"]["credentials_file"] for job in config["scrape_configs"]}
    [token_file] = token_files
    assert f'printf %s "$$IVI_METRICS_TOKEN" > {token_file}' in script
    assert 'test -n "$$IVI_METRICS_TOKEN" ||' in script.splitlines()[0], "refuses to start without it"
    assert PurePosixPath(token_file).parent.as_posix() in services()[PROMETHEUS]["tmpfs"]
    assert all(job["authorization"]["type"] == "Bearer" for job in config["scrape_configs"])


def test_prometheus_scrapes_the_relay_and_the_exporter_where_they_listen() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = {target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]}
    assert targets == {f"{RELAY}:{listening_port(RELAY)}", f"{METRICS}:{listening_port(METRICS)}"}
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])
    script = services()[PROMETHEUS]["command"][0]
    config_path = re.search(r"--config\.file=(\S+)", script).group(1)  # type: ignore[union-attr]
    assert mounts(PROMETHEUS)[config_path] == "./" + PROMETHEUS_CONFIG.relative_to(REPO_ROOT).as_posix()
    assert {"relay", "metrics"} <= set(services()[PROMETHEUS]["depends_on"])


def test_both_services_serve_metrics_where_prometheus_looks() -> None:
    settings = Settings(_env_file=None, webhook_token="t", metrics_token="m")  # type: ignore[arg-type]
    for app in (create_relay_app(settings), create_exporter_app(settings)):
        paths = {route.path for route in app.routes if "GET" in getattr(route, "methods", set())}
        assert {"/metrics", "/healthz"} <= paths


def test_grafana_is_provisioned_from_the_repository_and_needs_a_password() -> None:
    grafana_mounts = mounts(GRAFANA_SERVICE)
    assert grafana_mounts["/etc/grafana/provisioning"] == "./infra/monitoring/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ivi.yml").read_text())["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert grafana_mounts[dashboards_dir] == "./infra/monitoring/grafana/dashboards"
    for host_path in grafana_mounts.values():
        assert (REPO_ROOT / host_path).exists(), host_path
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == f"http://{PROMETHEUS}:9090"
    assert any("9090" in str(port) for port in services()[PROMETHEUS]["ports"])
    env = environment(GRAFANA_SERVICE)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert services()[GRAFANA_SERVICE]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    script = services()[GRAFANA_SERVICE]["command"][0]
    assert script.startswith('test -n "$$GF_SECURITY_ADMIN_PASSWORD" ||'), "Grafana's default password is admin"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{dashboards_dir}/{DASHBOARD.name}"


# --- Kubernetes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", OVERLAYS)
@pytest.mark.parametrize(("deployment", "name"), [("ivi-relay", "relay"), ("ivi-metrics", "metrics")])
def test_pods_serving_metrics_carry_scrape_annotations_for_their_port(entry: str, deployment: str, name: str) -> None:
    pod = find(render(entry), "Deployment", deployment)["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {port["containerPort"] for port in container({"spec": {"template": pod}}, name)["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    token = env_value(container({"spec": {"template": pod}}, name), "IVI_METRICS_TOKEN")["valueFrom"]["secretKeyRef"]
    assert token == {"name": "ivi-secrets", "key": "IVI_METRICS_TOKEN"}


@pytest.mark.parametrize("entry", OVERLAYS)
def test_one_exporter_at_a_time_listening_where_its_service_sends(entry: str) -> None:
    docs = render(entry)
    exporter = find(docs, "Deployment", "ivi-metrics")
    assert exporter["spec"]["replicas"] == 1 and exporter["spec"]["strategy"]["type"] == "Recreate"
    command_line = container(exporter, "metrics")["command"]
    assert command_line[command_line.index("--port") + 1] == "$(IVI_METRICS_PORT)"
    (port,) = find(docs, "Service", "ivi-metrics")["spec"]["ports"]
    assert int(config_map(docs)["IVI_METRICS_PORT"]) == port["port"] == 9108
    assert config_map(docs)["IVI_METRICS_HOST"] == "0.0.0.0"
