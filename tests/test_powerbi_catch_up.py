"""Power BI's long throttles and full tables on the running stack: deferred, caught up once, said.

A 429 asking for an hour defers the push (no worker waits), the CSV and JSON are written and the
report says `deferred`; the `powerbi-catch-up` deployment then pushes the rest exactly once,
even when two catch-ups run at once, and a third adds nothing. A table at its 5,000,000-row cap
gives a report that says so, in one run that is not retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from blocks.powerbi import PowerBIStreamingDataset
from blocks.powerbi_setup import STANDIN_TENANT, register_powerbi_blocks
from flows.powerbi_deferral import deferral_keys
from ivi.settings import Settings
from objectstore.store import OutputKeys, read_report
from processing.contract import load_contract
from tests.fault_support import wait_for_final_state
from tests.pipeline_support import (
    flow_runs_for_key,
    read_object,
    run_deployment_now,
    s3,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.powerbi_pipeline_support import (
    clear_faults,
    duplicated_ids,
    marked_rows,
    new_marker,
    post_times,
    queue_fault,
    standin,
    vendas_csv,
)

pytestmark = pytest.mark.services

CATCH_UP = "powerbi_catch_up/powerbi-catch-up"


@pytest.fixture
def no_faults_left(stack: Settings) -> Iterator[None]:
    clear_faults(stack)
    yield
    clear_faults(stack)


def catch_up(stack: Settings, *, due_only: bool) -> str:
    """Run the catch-up deployment once and wait for it; the state message."""
    run_id = run_deployment_now(stack, CATCH_UP, {"due_only": due_only})
    run = wait_for_final_state(stack, run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    return str(run["state"]["message"])


def deferred_upload(stack: Settings, marker: str, rows: int) -> tuple[str, str, dict[str, Any]]:
    """Upload `rows` rows whose push is deferred after its first batch; (key, eTag, report)."""
    key = f"vendas/powerbi-deferred/{marker}.csv"
    # the first POST goes through, the second is told to come back in an hour
    queue_fault(stack, "delay", 1, seconds=0)
    queue_fault(stack, "429", 1, retry_after=3600)
    etag = upload(stack, key, vendas_csv(rows, marker))
    return key, etag, wait_for_report(stack, key, etag, timeout=120)


def deferral_exists(stack: Settings, version: str) -> bool:
    record_key, _rows_key = deferral_keys(version)
    return read_report(s3(stack), stack.processed_bucket, record_key) is not None


def test_a_push_throttled_for_an_hour_is_deferred_then_caught_up_exactly_once(
    stack: Settings, no_faults_left: None
) -> None:
    marker = new_marker()
    key, etag, report = deferred_upload(stack, marker, 25_000)  # three batches: 10k, 10k, 5k
    version = f"{stack.raw_bucket}/{key}@{etag}"

    assert report["status"] == "processed" and report["exported_rows"] == 25_000
    assert report["powerbi"] == "deferred"
    assert (report["powerbi_rows"], report["powerbi_batches"]) == (10_000, 1)
    assert (report["powerbi_posts"], report["powerbi_throttled"]) == (2, 1)
    assert report["powerbi_retry_at"] and "powerbi-catch-up" in report["powerbi_message"]
    [run] = wait_for_runs_to_finish(stack, key)
    assert run["state_type"] == "COMPLETED"
    # the other outputs are not held back
    keys = OutputKeys.for_key(key)
    assert read_object(stack, stack.processed_bucket, keys.csv).count(b"\n") == 25_001
    assert read_object(stack, stack.processed_bucket, keys.json).startswith(b"[")
    assert len(marked_rows(stack, marker)) == 10_000
    assert deferral_exists(stack, version)

    # not due for an hour: the scheduled catch-up leaves it
    assert "not due yet" in catch_up(stack, due_only=True)
    assert len(marked_rows(stack, marker)) == 10_000 and deferral_exists(stack, version)

    # two catch-ups at once, told not to wait: the rows arrive once
    posts_before = len(post_times(stack))
    runs = [run_deployment_now(stack, CATCH_UP, {"due_only": False}) for _ in range(2)]
    for run_id in runs:
        assert wait_for_final_state(stack, run_id)["state_type"] == "COMPLETED"
    rows = marked_rows(stack, marker)
    assert len(rows) == 25_000 and not duplicated_ids(rows)
    assert sorted(row["id_venda"] for row in rows) == list(range(1, 25_001))
    assert len(post_times(stack)) - posts_before == 2  # batches 1 and 2; batch 0 was cached
    caught_up = wait_for_report(stack, key, etag)
    assert caught_up["powerbi"] == "pushed"
    assert (caught_up["powerbi_rows"], caught_up["powerbi_batches"]) == (25_000, 3)
    assert (caught_up["powerbi_posts"], caught_up["powerbi_throttled"]) == (4, 1)
    assert "powerbi_retry_at" not in caught_up and "powerbi_message" not in caught_up
    assert not deferral_exists(stack, version)

    # and once more: nothing left, nothing sent
    catch_up(stack, due_only=False)
    assert len(marked_rows(stack, marker)) == 25_000
    assert len(post_times(stack)) - posts_before == 2


def test_a_forced_rerun_and_a_catch_up_at_once_push_the_deferred_rows_once(
    stack: Settings, no_faults_left: None
) -> None:
    marker = new_marker()
    key, etag, report = deferred_upload(stack, marker, 12_000)  # two batches: 10k, 2k
    assert report["powerbi"] == "deferred" and len(marked_rows(stack, marker)) == 10_000
    rerun = run_deployment_now(
        stack, "process_object/process-object",
        {"bucket": stack.raw_bucket, "key": key, "etag": etag, "force": True},
    )
    caught_up = run_deployment_now(stack, CATCH_UP, {"due_only": False})
    for run_id in (rerun, caught_up):
        assert wait_for_final_state(stack, run_id)["state_type"] == "COMPLETED"
    rows = marked_rows(stack, marker)
    assert len(rows) == 12_000 and not duplicated_ids(rows)
    final = wait_for_report(stack, key, etag)
    assert (final["powerbi"], final["powerbi_rows"], final["powerbi_batches"]) == ("pushed", 12_000, 2)
    assert not deferral_exists(stack, f"{stack.raw_bucket}/{key}@{etag}")


@pytest.fixture
def full_vendas_table(stack: Settings) -> Iterator[str]:
    """`powerbi-vendas` pointed at a fresh stand-in dataset whose table holds 5,000,000
    rows (seeded); the stand-in block of `ivi up` comes back after the test."""
    contract = load_contract("vendas")
    dataset_id, push_key = f"caps-full-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    standin(stack, "POST", "/_standin/datasets", json={
        "id": dataset_id, "key": push_key, "group": STANDIN_TENANT, "defaultMode": "Push",
        "table": contract.powerbi_table,
        "columns": [{"name": c.name, "dataType": c.powerbi_type} for c in contract.columns],
    })
    standin(stack, "POST", f"/_standin/datasets/{dataset_id}/tables/{contract.powerbi_table}/seed",
            json={"rows": 5_000_000})
    url = f"{stack.powerbi_standin_url}/beta/{STANDIN_TENANT}/datasets/{dataset_id}/rows?key={push_key}"
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        PowerBIStreamingDataset(push_url=SecretStr(url)).save("powerbi-vendas", overwrite=True)
    try:
        yield dataset_id
    finally:
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            register_powerbi_blocks(stack)


def test_a_full_table_gives_a_report_that_says_so_and_is_not_retried(
    stack: Settings, full_vendas_table: str
) -> None:
    marker = new_marker()
    key = f"vendas/powerbi-full/{marker}.csv"
    etag = upload(stack, key, vendas_csv(30, marker))
    report = wait_for_report(stack, key, etag)
    keys = OutputKeys.for_key(key)

    assert report["status"] == "processed" and report["exported_rows"] == 30
    assert report["powerbi"] == "table_full" and report["powerbi_rows"] == 0
    message: str = report["powerbi_message"]
    assert "5,000,000" in message and "--retention basicFIFO" in message
    assert f"s3://{stack.processed_bucket}/{keys.csv}" in message
    assert read_object(stack, stack.processed_bucket, keys.csv).count(b"\n") == 31
    [run] = wait_for_runs_to_finish(stack, key)
    assert run["state_type"] == "COMPLETED" and len(flow_runs_for_key(stack, key)) == 1
    requests: list[dict[str, Any]] = standin(
        stack, "GET", f"/_standin/datasets/{full_vendas_table}/requests"
    )["requests"]
    assert [request["answer"] for request in requests] == ["400"]  # asked once, not retried
    assert not deferral_exists(stack, f"{stack.raw_bucket}/{key}@{etag}")
