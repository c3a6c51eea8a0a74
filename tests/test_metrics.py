"""/metrics of the relay and of the metrics exporter, scraped over HTTP on the running stack.

Known files go in (one clean, one with quarantined rows and a duplicate, one rejected), and
the counters must move by exactly what their reports say. The stack is the session's, shared
with other test files, so each test reads the counters before and after what it does and
asserts the difference (pytest runs one test at a time).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ivi import stack as ivi_stack
from ivi.demo import SAMPLES_DIR
from ivi.settings import Settings
from tests.pipeline_support import run_deployment_now, upload, wait_for_report
from tests.stack_support import auth_headers, automations_paused, free_ports, wait_for_events
from tests.test_monitoring_infra import PROMETHEUS_CONFIG, as_prometheus_sends_it, every_expression

pytestmark = pytest.mark.services

Sample = tuple[str, frozenset[tuple[str, str]]]  # (sample name, labels)

VENDAS_HEADER = "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF\n"
# 3 rows: one clean, one quarantined (UF "XX"), one duplicate of the first
VENDAS_WITH_BAD_ROWS = (
    VENDAS_HEADER
    + "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
    + "2;2024-01-06;Bob;Lápis;Papelaria;1;10;10;XX\n"
    + "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
)
NOT_A_TABLE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def metrics_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.metrics_token.get_secret_value()}"}


def samples(exposition: str) -> dict[Sample, float]:
    """Every sample of a /metrics answer, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def scrape(url: str, settings: Settings) -> dict[Sample, float]:
    response = httpx.get(url, headers=metrics_headers(settings), timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def moved(before: Mapping[Sample, float], after: Mapping[Sample, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """How much each series of `name` grew (series that did not move left out)."""
    grown = {
        labels: value - before.get((sample, labels), 0.0)
        for (sample, labels), value in after.items()
        if sample == name
    }
    return {labels: delta for labels, delta in grown.items() if delta}


def moved_by(before: Mapping[Sample, float], after: Mapping[Sample, float], name: str, source: str,
             label: str) -> dict[str, float]:
    """How much each series of `name` for `source` grew, by the value of `label`."""
    return {dict(series)[label]: delta for series, delta in moved(before, after, name).items()
            if dict(series)["source"] == source}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.fixture(scope="module")
def urls(stack: Settings) -> dict[str, str]:
    relay, exporter = ivi_stack.metrics_urls(stack)
    return {"relay": relay, "exporter": exporter}


@pytest.mark.parametrize("which", ["relay", "exporter"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}, "webhook token", "bare"],
    ids=["no-header", "wrong-token", "basic-auth", "the-webhook-token", "token-without-scheme"],
)
def test_metrics_without_the_token_are_refused(
    stack: Settings, urls: dict[str, str], which: str, headers: dict[str, str] | str
) -> None:
    if headers == "webhook token":  # the store's token opens the webhook, not the figures
        headers = auth_headers(stack)
    elif headers == "bare":
        headers = {"Authorization": stack.metrics_token.get_secret_value()}
    response = httpx.get(urls[which], headers=headers, timeout=30)
    assert response.status_code == 401
    assert "ivi_" not in response.text
    assert response.headers.get("www-authenticate") == "Bearer"


def test_the_relay_counts_what_it_received_posted_and_ignored_by_reason(
    stack: Settings, urls: dict[str, str]
) -> None:
    """One MinIO body with four records (a raw CSV, a CSV of another bucket, a text file, a
    delete), an empty body, and a call without the token: MinIO is not the stack's store, so
    only this test moves the `source="minio"` series."""
    key = f"metrics/relay-{uuid.uuid4().hex[:8]}"
    records = [
        ("s3:ObjectCreated:Put", stack.raw_bucket, f"{key}.csv"),
        ("s3:ObjectCreated:Put", stack.processed_bucket, f"{key}.csv"),
        ("s3:ObjectCreated:Put", stack.raw_bucket, f"{key}.txt"),
        ("s3:ObjectRemoved:Delete", stack.raw_bucket, f"{key}.csv"),
    ]
    body = {
        "EventName": "s3:ObjectCreated:Put",
        "Records": [
            {"eventName": event, "s3": {"bucket": {"name": bucket},
                                        "object": {"key": name, "eTag": uuid.uuid4().hex, "size": 10}}}
            for event, bucket, name in records
        ],
    }
    route = f"{stack.relay_url}/minio/events"
    before = scrape(urls["relay"], stack)
    with automations_paused(stack):  # the posted event is for an object that does not exist
        answer = httpx.post(route, json=body, headers=auth_headers(stack), timeout=30)
        assert answer.status_code == 200 and len(answer.json()["posted"]) == 1
        assert httpx.post(route, content=b"", headers=auth_headers(stack), timeout=30).status_code == 200
        assert httpx.post(route, json=body, timeout=30).status_code == 401
        wait_for_events(stack, {"resource": {"id": [f"minio.object.{stack.raw_bucket}/{key}.csv"]}})
    after = scrape(urls["relay"], stack)

    minio = labels(source="minio")
    assert moved(before, after, "ivi_relay_events_received_total").get(minio) == 5
    assert moved(before, after, "ivi_relay_events_posted_total").get(minio) == 1
    assert minio not in moved(before, after, "ivi_relay_events_dropped_total")
    assert minio not in moved(before, after, "ivi_relay_events_unavailable_total")
    ignored = moved_by(before, after, "ivi_relay_events_ignored_total", "minio", "reason")
    assert ignored == {"other_bucket": 1, "not_csv": 1, "not_created": 1, "empty_body": 1}
    assert moved_by(before, after, "ivi_relay_requests_total", "minio", "code") == {"200": 2, "401": 1}


def test_known_uploads_move_the_exporters_counters_by_exactly_their_reports(
    stack: Settings, urls: dict[str, str]
) -> None:
    run = f"metrics-{uuid.uuid4().hex[:8]}"
    files = {
        f"clientes/{run}/clean.csv": (SAMPLES_DIR / "mock.csv").read_bytes(),  # 10 rows, all clean
        f"vendas/{run}/bad-rows.csv": VENDAS_WITH_BAD_ROWS.encode("utf-8"),
        f"vendas/{run}/not-a-table.csv": NOT_A_TABLE,
    }
    exporter_before = scrape(urls["exporter"], stack)
    relay_before = scrape(urls["relay"], stack)
    started = time.time()
    etags = {key: upload(stack, key, data) for key, data in files.items()}
    reports = {key: wait_for_report(stack, key, etag) for key, etag in etags.items()}
    assert [r["status"] for r in reports.values()] == ["processed", "processed", "rejected"]
    after = scrape(urls["exporter"], stack)
    relay_after = scrape(urls["relay"], stack)

    assert moved(exporter_before, after, "ivi_files_total") == {
        labels(contract="clientes", status="processed"): 1,
        labels(contract="vendas", status="processed"): 1,
        labels(contract="vendas", status="rejected"): 1,
    }
    assert moved(exporter_before, after, "ivi_rows_total") == {
        labels(contract="clientes", outcome="input"): 10,
        labels(contract="clientes", outcome="exported"): 10,
        labels(contract="vendas", outcome="input"): 3,
        labels(contract="vendas", outcome="exported"): 1,
        labels(contract="vendas", outcome="quarantined"): 1,
        labels(contract="vendas", outcome="duplicate"): 1,
    }
    assert moved(exporter_before, after, "ivi_powerbi_rows_total") == {
        labels(contract="clientes"): reports[f"clientes/{run}/clean.csv"]["powerbi_rows"],
        labels(contract="vendas"): reports[f"vendas/{run}/bad-rows.csv"]["powerbi_rows"],
    }
    assert moved(exporter_before, after, "ivi_processing_seconds_count") == {
        labels(contract="clientes"): 1, labels(contract="vendas"): 2,
    }
    assert sum(moved(exporter_before, after, "ivi_processing_seconds_sum").values()) == pytest.approx(
        sum(r["duration_s"] for r in reports.values())
    )
    # upload -> report: each file once, and no longer than this test has been waiting
    assert moved(exporter_before, after, "ivi_upload_to_report_seconds_count") == {
        labels(contract="clientes"): 1, labels(contract="vendas"): 2,
    }
    latency = sum(moved(exporter_before, after, "ivi_upload_to_report_seconds_sum").values())
    assert 0 < latency <= 3 * (time.time() - started) + 3
    assert after[("ivi_report_scan_ok", frozenset())] == 1
    assert moved(exporter_before, after, "ivi_exporter_errors_total") == {}

    seaweedfs = labels(source="seaweedfs")
    # Three new keys: one `create` each (an `update` only comes for an overwrite); the folders
    # created on the way arrive too, and are ignored.
    assert moved(relay_before, relay_after, "ivi_relay_events_posted_total").get(seaweedfs) == 3
    ignored = moved_by(relay_before, relay_after, "ivi_relay_events_ignored_total", "seaweedfs", "reason")
    assert set(ignored) <= {"folder"}
    received = moved(relay_before, relay_after, "ivi_relay_events_received_total").get(seaweedfs)
    assert received == 3 + sum(ignored.values())

    # A report seen again is not counted again.
    again = scrape(urls["exporter"], stack)
    for name in ("ivi_files_total", "ivi_rows_total", "ivi_processing_seconds_count"):
        assert moved(after, again, name) == {}, name


def test_a_report_written_again_by_a_forced_run_counts_once_more(stack: Settings, urls: dict[str, str]) -> None:
    key = f"vendas/metrics-{uuid.uuid4().hex[:8]}/forced.csv"
    etag = upload(stack, key, VENDAS_WITH_BAD_ROWS.encode("utf-8"))
    first = wait_for_report(stack, key, etag)
    before = scrape(urls["exporter"], stack)
    run_deployment_now(stack, "process_object/process-object",
                       {"bucket": stack.raw_bucket, "key": key, "force": True})
    deadline = time.monotonic() + 90
    while (report := wait_for_report(stack, key, etag))["flow_run_id"] == first["flow_run_id"]:
        assert time.monotonic() < deadline, "the forced run wrote no new report"
        time.sleep(0.25)
    after = scrape(urls["exporter"], stack)
    assert moved(before, after, "ivi_files_total") == {labels(contract="vendas", status="processed"): 1}
    assert moved(before, after, "ivi_rows_total").get(labels(contract="vendas", outcome="quarantined")) == 1
    assert report["status"] == "processed"


def test_status_json_names_both_metrics_endpoints(stack: Settings, urls: dict[str, Any]) -> None:
    described = ivi_stack.describe(stack)
    assert described["metrics_urls"] == [urls["relay"], urls["exporter"]]
    assert described["services"]["metrics"] == "up"  # type: ignore[index]


# --- a real Prometheus (Debian package `prometheus`, installed by `make install`) ----------------
SCRAPE_SECONDS = "5s"


@contextmanager
def prometheus(config: dict[str, Any], directory: Path) -> Iterator[str]:
    """A Prometheus of this test's own on a free port with `config`; its API's base URL."""
    executable = shutil.which("prometheus")
    assert executable, "prometheus missing: `make install` installs the Debian package prometheus"
    (config_file := directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_ports(1)[0]
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [executable, f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def targets_once_scraped(api: str, jobs: set[str], timeout: float = 90.0) -> dict[str, dict[str, Any]]:
    """Each job's target, once every one has been scraped at least once."""
    deadline = time.monotonic() + timeout
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{api}/targets", timeout=5)
        except httpx.HTTPError:  # not listening yet
            response = None
        # 503 "Service Unavailable" (not JSON) until its storage is open
        active = response.json()["data"]["activeTargets"] if response and response.status_code == 200 else []
        found = {target["labels"]["job"]: target for target in active}
        if set(found) == jobs and all(target["health"] != "unknown" for target in found.values()):
            return found
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape {jobs} within {timeout} s: {found}")


def query(api: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{api}/query", params={"query": expr}, timeout=30).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def test_a_real_prometheus_scrapes_both_endpoints_with_the_token_and_runs_the_dashboards_queries(
    stack: Settings, urls: dict[str, str], tmp_path: Path
) -> None:
    """The shipped scrape configuration, pointed at this stack: its jobs get in with the token
    (and a job without it does not), and every query of the dashboard runs on what they got."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text(stack.metrics_token.get_secret_value(), encoding="utf-8")
    token_file.chmod(0o600)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    addresses = {"ivi-relay": urlsplit(urls["relay"]).netloc, "ivi-metrics": urlsplit(urls["exporter"]).netloc}
    config["global"].update(scrape_interval=SCRAPE_SECONDS, scrape_timeout=SCRAPE_SECONDS)
    for job in config["scrape_configs"]:
        job["authorization"]["credentials_file"] = str(token_file)
        job["static_configs"] = [{"targets": [addresses[job["job_name"]]]}]
    config["scrape_configs"].append(
        {"job_name": "without-token", "static_configs": [{"targets": [addresses["ivi-metrics"]]}]}
    )
    with prometheus(config, tmp_path) as api:
        targets = targets_once_scraped(api, {*addresses, "without-token"})
        for job in addresses:
            assert (targets[job]["health"], targets[job]["lastError"]) == ("up", ""), targets[job]
        assert targets["without-token"]["health"] == "down"
        assert "401" in targets["without-token"]["lastError"]

        [scan_ok] = query(api, 'ivi_report_scan_ok{job="ivi-metrics"}')
        assert scan_ok["value"][1] == "1"
        assert query(api, 'ivi_relay_events_received_total{job="ivi-relay", source="seaweedfs"}')
        for expr in every_expression():
            if not expr.startswith("label_values("):  # Grafana's own function, not PromQL
                query(api, as_prometheus_sends_it(expr))


def test_an_unreachable_store_is_a_scrape_that_says_so_not_a_failed_one(stack: Settings) -> None:
    """The exporter with the store away (a port nobody listens on): a scrape still gets the
    figures, with `ivi_report_scan_ok 0` and the failed step counted; the runs still come from
    Prefect."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from metrics.exporter import Exporter
    from metrics.figures import PipelineMetrics
    from metrics.scan import ReportScanner
    from objectstore.store import minio_client

    figures = PipelineMetrics()
    nowhere = minio_client(f"http://127.0.0.1:{free_ports(1)[0]}", "nobody", "nothing")
    exporter = Exporter(figures, ReportScanner(nowhere, stack.processed_bucket, figures))
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        found = samples(exporter.render().decode())
    assert found[("ivi_report_scan_ok", frozenset())] == 0
    assert found[("ivi_exporter_errors_total", labels(step="reports"))] == 1
    assert found[("ivi_exporter_errors_total", labels(step="flow_runs"))] == 0
    assert found[("ivi_flow_runs", labels(state="COMPLETED"))] >= 1
