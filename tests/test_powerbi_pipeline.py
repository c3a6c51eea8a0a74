"""The Power BI export on the running stack: upload -> flow -> the stand-in `ivi up` started.

Exactly once per object version, through repeated events, service faults and a run killed
half way; paced within 120 POSTs a minute; no secret in a status, a report or a log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from urllib.parse import quote_plus

import httpx
import pytest

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.powerbi import PowerBIPushDataset, PowerBIStreamingDataset
from blocks.powerbi_setup import (
    delete_block_document,
    register_powerbi_blocks,
    standin_dataset_id,
    standin_push_key,
)
from deployments.apply import POWERBI_LIMIT_SLOTS, POWERBI_SLOT_DECAY_PER_SECOND, ensure_powerbi_rate_limits
from flows.export_powerbi import load_destination
from flows.artifacts import artifact_key
from ivi.settings import Settings
from tests.paths import REPO_ROOT
from tests.pipeline_support import (
    artifacts_with_key,
    lock_holder_run_id,
    minio_event,
    prefect_request,
    run_deployment_now,
    runs_that_processed,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.powerbi_pipeline_support import (
    clear_faults,
    dataset_state,
    duplicated_ids,
    flow_run_process,
    marked_rows,
    most_posts_in_any_window,
    new_marker,
    post_times,
    queue_fault,
    standin_requests,
    vendas_csv,
    wait_until,
)
from tests.stack_support import auth_headers

pytestmark = pytest.mark.services


@pytest.fixture
def no_faults_left(stack: Settings):  # type: ignore[no-untyped-def]
    """Faults a test queued but did not use must not hit the next test's requests."""
    clear_faults(stack)
    yield
    clear_faults(stack)


def _flow_run_logs(settings: Settings, flow_run_id: str) -> str:
    return prefect_request(
        "POST",
        f"{settings.prefect_api_url}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200},
    ).text


def _run_state(settings: Settings, flow_run_id: str) -> str:
    response = prefect_request("GET", f"{settings.prefect_api_url}/flow_runs/{flow_run_id}")
    return str(response.json()["state_type"])


def test_up_saves_a_standin_block_and_a_rate_limit_per_contract(stack: Settings) -> None:
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        block = PowerBIStreamingDataset.load("powerbi-vendas")
    assert block.describe() == (
        f"{stack.powerbi_standin_url}/beta/ivi-standin/datasets/{standin_dataset_id('vendas')}/rows"
    )
    for contract in ("vendas", "clientes"):
        url = f"{stack.prefect_api_url}/v2/concurrency_limits/powerbi-{contract}"
        limit = prefect_request("GET", url).json()
        assert (limit["limit"], limit["slot_decay_per_second"], limit["active"]) == (
            POWERBI_LIMIT_SLOTS, POWERBI_SLOT_DECAY_PER_SECOND, True
        )


def test_an_uploaded_files_rows_reach_the_standin_exactly_once(stack: Settings) -> None:
    marker = new_marker()
    key = f"vendas/powerbi/{marker}.csv"
    data = vendas_csv(40, marker) + b"41,2024-01-02,x,y,z,1,10,10,XX\n"  # one row quarantined
    etag = upload(stack, key, data)
    report = wait_for_report(stack, key, etag)
    rows = marked_rows(stack, marker)
    assert report["exported_rows"] == report["powerbi_rows"] == len(rows) == 40
    assert report["powerbi_batches"] == 1
    assert report["powerbi_destination"] == (
        f"{stack.powerbi_standin_url}/beta/ivi-standin/datasets/{standin_dataset_id('vendas')}/rows"
    )
    assert rows[0] == {
        "id_venda": 1, "data_venda": "2024-01-02T00:00:00", "cliente": marker, "produto": "Caneta 1",
        "categoria": "Papelaria", "quantidade": 2, "preco_unitario": 10.5, "valor_total": 21.0,
        "uf": "SP",
    }
    # the push key is in no report, artifact or log
    push_key = standin_push_key("vendas", stack)
    [run] = runs_that_processed(wait_for_runs_to_finish(stack, key))  # a reconcile tick may add a no-op run
    artifacts = json.dumps(artifacts_with_key(stack, artifact_key("report", key)))
    for text in (json.dumps(report), artifacts, _flow_run_logs(stack, run["id"])):
        assert push_key not in text


def test_the_same_event_delivered_three_times_pushes_the_rows_once(stack: Settings) -> None:
    marker = new_marker()
    key = f"vendas/powerbi/{marker}.csv"
    data = vendas_csv(25, marker)
    etag = upload(stack, key, data)
    body = minio_event(stack, quote_plus(key, safe="/"), etag, len(data))
    for _ in range(3):
        answer = httpx.post(f"{stack.relay_url}/minio/events", json=body, headers=auth_headers(stack))
        assert answer.status_code == 200
    report = wait_for_report(stack, key, etag)
    runs = wait_for_runs_to_finish(stack, key, at_least=1)
    assert len(runs_that_processed(runs)) == 1
    rows = marked_rows(stack, marker)
    assert len(rows) == report["powerbi_rows"] == 25 and not duplicated_ids(rows)


def test_429s_500s_and_dropped_connections_lose_and_duplicate_no_row(
    stack: Settings, no_faults_left: None
) -> None:
    marker = new_marker()
    key = f"vendas/powerbi/{marker}.csv"
    for kind, count in (("429", 2), ("500", 2), ("close", 1)):
        queue_fault(stack, kind, count, retry_after=1)
    etag = upload(stack, key, vendas_csv(12_000, marker))  # two batches
    report = wait_for_report(stack, key, etag, timeout=120)
    rows = marked_rows(stack, marker)
    assert report["powerbi_batches"] == 2
    assert len(rows) == report["powerbi_rows"] == report["exported_rows"] == 12_000
    assert not duplicated_ids(rows)
    assert not httpx.get(
        f"{stack.powerbi_standin_url}/_standin/datasets", headers=stack.powerbi_standin_admin_headers
    ).is_error
    assert dataset_state(stack)["pending"] == 0


def test_a_run_killed_in_the_middle_of_a_push_resumes_without_missing_or_twice_pushed_rows(
    stack: Settings, no_faults_left: None
) -> None:
    marker = new_marker()
    key = f"vendas/powerbi/{marker}.csv"
    # the first POST goes through; the second is refused with a long Retry-After, so the run
    # is killed while it waits between POSTs. (Killed while a POST is in flight, the batch
    # may be stored by Power BI all the same and pushed again by the rerun: Power BI's push
    # API has no idempotency key. docs/powerbi.md states that gap.)
    since = time.time()
    queue_fault(stack, "delay", 1, seconds=0)
    queue_fault(stack, "429", 1, retry_after=60)
    etag = upload(stack, key, vendas_csv(25_000, marker))  # three batches: 10k, 10k, 5k

    wait_until(
        lambda: len(marked_rows(stack, marker)) == 10_000 and "429" in _answers_since(stack, since),
        "the first batch stored and the second refused with a 429", timeout=90,
    )
    run = {"id": lock_holder_run_id(stack, key, etag)}
    victim = flow_run_process(stack, run["id"])
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    wait_until(
        lambda: _run_state(stack, run["id"]) in {"CRASHED", "FAILED"}, "the run to crash", timeout=30
    )
    assert len(marked_rows(stack, marker)) == 10_000  # the refused batch was not stored

    # a new run of the same object version: batch 1 comes from the cache, 2 and 3 are pushed
    run_deployment_now(stack, "process_object/process-object", {"bucket": stack.raw_bucket, "key": key, "etag": etag})
    report = wait_for_report(stack, key, etag, timeout=120)
    rows = marked_rows(stack, marker)
    assert len(rows) == report["powerbi_rows"] == report["exported_rows"] == 25_000
    assert report["powerbi_batches"] == 3
    assert not duplicated_ids(rows)
    assert sorted(row["id_venda"] for row in rows) == list(range(1, 25_001))


def _answers_since(stack: Settings, since: float) -> list[str]:
    """The stand-in's answers (status code or `close`) to rows requests since `since`."""
    return [str(item["answer"]) for item in standin_requests(stack) if item["received_at"] >= since]


def test_two_files_pushed_at_once_stay_within_120_posts_a_minute(stack: Settings) -> None:
    since = time.time()
    markers = [new_marker(), new_marker()]
    keys = [f"vendas/powerbi/{marker}.csv" for marker in markers]
    etags = [upload(stack, key, vendas_csv(30_000, marker)) for key, marker in zip(keys, markers)]
    for key, etag, marker in zip(keys, etags, markers):
        report = wait_for_report(stack, key, etag, timeout=120)
        rows = marked_rows(stack, marker)
        assert len(rows) == report["powerbi_rows"] == 30_000 and not duplicated_ids(rows)
    times = sorted(post_times(stack, since=since))
    assert len(times) == 6
    assert most_posts_in_any_window(times, 60.0) <= 120
    # the pace itself: k POSTs never arrive faster than the limit's decay allows (one of
    # slack for arrival jitter), so no 60 s span can hold more than 119 + 1
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert j - i <= 2 + POWERBI_SLOT_DECAY_PER_SECOND * (times[j] - times[i]), times


def test_status_json_shows_the_standin_url_and_no_secret_is_in_it_or_the_logs(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ivi.cli", "status", "--json"],
        env={**os.environ, **stack.child_env()}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["powerbi_standin_url"] == f"http://127.0.0.1:{stack.powerbi_port}"
    assert state["services"]["powerbi-standin"] == "up"
    logs = "".join(p.read_text(errors="replace") for p in (stack.data_dir / "logs").glob("*.log"))
    for secret in (
        stack.webhook_token.get_secret_value(),
        stack.s3_secret_key.get_secret_value(),
        standin_push_key("vendas", stack),
        standin_push_key("clientes", stack),
    ):
        assert secret not in result.stdout + result.stderr
        assert secret not in logs  # `ivi up`'s apply log names the blocks, never their keys


def test_applying_again_brings_a_changed_rate_limit_back(stack: Settings) -> None:
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(
                "powerbi-clientes",
                GlobalConcurrencyLimitUpdate(limit=50, slot_decay_per_second=10.0),
            )
            done = dict(ensure_powerbi_rate_limits(client))
            limit = client.read_global_concurrency_limit_by_name("powerbi-clientes")
    assert done == {"powerbi-clientes": "updated", "powerbi-vendas": "unchanged"}
    assert (limit.limit, limit.slot_decay_per_second) == (POWERBI_LIMIT_SLOTS, POWERBI_SLOT_DECAY_PER_SECOND)


@pytest.fixture
def clientes_block_restored(stack: Settings):  # type: ignore[no-untyped-def]
    """Whatever a test saves as `powerbi-clientes`, the stand-in block comes back after it."""
    yield
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        delete_block_document(PowerBIPushDataset, "powerbi-clientes")
        register_powerbi_blocks(stack)


def test_create_dataset_command_sends_the_contracts_rows_to_the_new_push_dataset(
    stack: Settings, clientes_block_restored: None
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ivi.cli", "powerbi", "create-dataset", "--contract", "clientes"],
        env={**os.environ, **stack.child_env()}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"created Power BI dataset (\S+) for contract clientes", result.stdout)
    assert match, result.stdout
    dataset_id = match.group(1)
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        destination = load_destination("clientes")  # the streaming block of `ivi up` is gone
    assert isinstance(destination, PowerBIPushDataset) and destination.dataset_id == dataset_id
    assert destination.client_secret.get_secret_value() not in result.stdout + result.stderr

    key = f"clientes/powerbi/{new_marker()}.csv"
    etag = upload(stack, key, b"idade,genero,renda_mensal\n30,F,1000\n41,m,2500.5\n")
    report = wait_for_report(stack, key, etag)
    assert report["powerbi_rows"] == 2 and report["powerbi_destination"].endswith(
        f"/datasets/{dataset_id}/tables/clientes/rows"
    )
    rows = httpx.get(
        f"{stack.powerbi_standin_url}/_standin/datasets/{dataset_id}/rows",
        headers=stack.powerbi_standin_admin_headers,
    ).json()
    assert rows["rows"] == [
        {"idade": 30, "genero": "F", "renda_mensal": 1000.0},
        {"idade": 41, "genero": "M", "renda_mensal": 2500.5},
    ]
