"""The fault matrix: the pipeline keeps its row accounting when a service breaks under it.

Each test breaks a real process of the session's stack (stopped, killed or frozen by pid),
brings it back, and checks that every uploaded file ends processed exactly once: its report's
counts, one run that did the work, and its rows in the Power BI stand-in exactly once. Each
test uses keys and a `cliente` marker of its own, and leaves every service running.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from ivi import prefect_stack, seaweed
from ivi import stack as ivi_stack
from objectstore.store import OutputKeys
from ivi.settings import Settings
from powerbi_standin.faults import Fault, FaultQueue
from tests.fault_support import (
    bring_back,
    create_run,
    flow_run,
    freeze,
    kill_service,
    poll,
    service_process,
    stack_left_healthy,
    stop_service,
    task_runs,
    tiny_tmpfs,
    upload_trigger_disabled,
    wait_for_final_state,
    wait_for_no_runs_in_flight,
    wait_until_unchanged,
)
from tests.pipeline_support import (
    flow_runs_for_key,
    lock_holder_run_id,
    minio_event,
    read_object,
    run_deployment_now,
    runs_that_processed,
    s3,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.powerbi_pipeline_support import (
    VENDAS_HEADER,
    clear_faults,
    duplicated_ids,
    flow_run_process,
    marked_rows,
    most_posts_in_any_window,
    new_marker,
    queue_fault,
    standin_requests,
    vendas_csv,
)
from tests.stack_support import auth_headers

services = pytest.mark.services


@pytest.fixture
def no_faults_left(stack: Settings) -> Iterator[None]:
    """Faults a test queued but did not use must not hit the next test's requests, and runs
    an earlier test left in flight must not take this test's faults."""
    wait_for_no_runs_in_flight(stack)
    clear_faults(stack)
    yield
    clear_faults(stack)


def padded_vendas_csv(rows: int, marker: str, pad_bytes: int) -> bytes:
    """Valid `vendas` rows with an extra column of `pad_bytes` characters, which the contract
    ignores: a file of many megabytes whose rows are few (a fetch slow enough to be hit,
    a Power BI push that stays small)."""
    padding = "p" * pad_bytes
    lines = [VENDAS_HEADER.rstrip("\n") + ",observacao\n"]
    for number in range(1, rows + 1):
        quantity = 1 + number % 5
        lines.append(
            f"{number},2024-02-{1 + number % 28:02d},{marker},Caderno {number % 5},Papelaria,"
            f"{quantity},7.25,{quantity * 7.25:.2f},RJ,{padding}\n"
        )
    return "".join(lines).encode()


def assert_processed_once(
    settings: Settings, key: str, etag: str, marker: str, rows: int
) -> dict[str, Any]:
    """One report at this eTag with `rows` exported, one run that did the work, and the
    rows in the stand-in exactly once."""
    report = wait_for_report(settings, key, etag, timeout=180)
    assert report["status"] == "processed"
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"]) == (rows, rows, 0)
    runs = wait_for_runs_to_finish(settings, key, timeout=180)
    assert len(runs_that_processed(runs)) == 1, [(r["name"], r["state_type"]) for r in runs]
    pushed = marked_rows(settings, marker)
    assert len(pushed) == report["powerbi_rows"] == rows
    assert not duplicated_ids(pushed)
    return report


# --- the object store -------------------------------------------------------------------------
@services
def test_the_s3_server_killed_in_the_middle_of_a_fetch_comes_back_and_the_run_completes(
    stack: Settings,
) -> None:
    marker = new_marker()
    key = f"vendas/faults/s3/{marker}.csv"
    rows = 1500
    data = padded_vendas_csv(rows, marker, pad_bytes=40_000)  # ~60 MB
    etag = upload(stack, key, data)
    # minio's fget_object streams into `object.<etag>.part.minio` in the run's temp dir
    partial = Path(tempfile.gettempdir()).glob
    pattern = "ivi-*/object.*.part.minio"
    with stack_left_healthy(stack):
        found = poll(lambda: next(iter(partial(pattern)), None), "the fetch to start", 120, interval=0.005)
        store = service_process(stack, seaweed.SERVICE)
        freeze(store)  # hold the transfer where it is, then crash the store under it
        assert found.exists() and found.stat().st_size < len(data), "the fetch ended first"
        kill_service(stack, seaweed.SERVICE)
        assert bring_back(stack) == [seaweed.SERVICE]
    report = assert_processed_once(stack, key, etag, marker, rows)
    assert report["source_size"] == len(data)
    [fetch] = [t for t in task_runs(stack, report["flow_run_id"], "fetch") if t["name"].startswith("fetch")]
    assert fetch["state_type"] == "COMPLETED" and fetch["run_count"] >= 2  # retried, then done


# --- the Prefect server -----------------------------------------------------------------------
@services
def test_uploads_while_the_prefect_server_is_down_get_503s_and_the_reconcile_processes_each_once(
    stack: Settings,
) -> None:
    markers = [new_marker() for _ in range(3)]
    keys = [f"vendas/faults/prefect/{marker}.csv" for marker in markers]
    relay_log = ivi_stack.files(stack, ivi_stack.RELAY).log_file
    log_start = relay_log.stat().st_size
    with stack_left_healthy(stack):
        stop_service(stack, prefect_stack.SERVER)
        etags = [upload(stack, key, vendas_csv(20 + i, marker)) for i, (key, marker) in enumerate(zip(keys, markers))]
        # the store's webhook hears 503 (retry later) for each upload, and so does a MinIO-shaped event
        poll(lambda: _relay_answers(relay_log, log_start, "/seaweedfs/events", 503) >= len(keys),
             "the relay to answer the store's events 503", 60)
        body = minio_event(stack, quote_plus(keys[0], safe="/"), etags[0], None)
        answer = httpx.post(f"{stack.relay_url}/minio/events", json=body, headers=auth_headers(stack), timeout=30)
        assert answer.status_code == 503 and answer.json() == {"detail": "Prefect API unavailable"}
        # the store retries each event a few times (1, 2, 4 s apart), then drops it: the server
        # comes back only once the relay has heard nothing for longer than the longest back-off
        wait_until_unchanged(lambda: _relay_answers(relay_log, log_start, "/seaweedfs/events", 503),
                             "the store to give up retrying its events", quiet=QUIET_AFTER_RETRIES_S, timeout=120)
        assert bring_back(stack) == [prefect_stack.SERVER]
    # the events were lost ...
    assert all(flow_runs_for_key(stack, key) == [] for key in keys)
    # ... and the reconcile, which the schedule runs every 5 minutes, is run now
    run_deployment_now(stack, "backfill/reconcile", {"bucket": stack.raw_bucket})
    for i, (key, etag, marker) in enumerate(zip(keys, etags, markers)):
        assert_processed_once(stack, key, etag, marker, 20 + i)


QUIET_AFTER_RETRIES_S = 12.0  # longer than the store's longest webhook back-off (10 s)


def _relay_answers(log: Path, start: int, route: str, status: int) -> int:
    """How many requests to `route` the relay answered `status` since byte `start` of its log."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", errors="replace")
    return text.count(f'"POST {route} HTTP/1.1" {status}')


# --- the worker -------------------------------------------------------------------------------
@services
def test_a_run_killed_with_its_worker_in_the_middle_of_the_export_is_rerun_without_duplicates(
    stack: Settings, no_faults_left: None
) -> None:
    """The worker and the run's process both killed: nobody is left to tell Prefect that the
    run died, so it stays Running; the rerun (reconcile) takes its version over once the dead
    run's lease has run out (30 s, no renewal), marks it Crashed, and must not push again what
    the dead run pushed.

    The run is killed between two POSTs (waiting out a 429's Retry-After), not during one: a
    POST whose body the service has received is stored even if its client dies, and the
    rerun cannot know it was (Power BI has no idempotency key), so a kill during a POST can
    push that one batch twice. (A run killed while its worker lives is
    tests/test_powerbi_pipeline.py::test_a_run_killed_in_the_middle_of_a_push_resumes...)
    """
    marker = new_marker()
    key = f"vendas/faults/worker/{marker}.csv"
    since = time.time()
    queue_fault(stack, "delay", 1, seconds=0)
    queue_fault(stack, "429", 1, retry_after=60)  # the second batch waits a minute to retry
    etag = upload(stack, key, vendas_csv(25_000, marker))  # three batches: 10k, 10k, 5k
    poll(lambda: len(marked_rows(stack, marker)) == 10_000
         and [r["answer"] for r in standin_requests(stack) if r["received_at"] >= since][-1:] == ["429"],
         "the first batch stored and the second told to wait", 120)
    orphan = flow_run(stack, lock_holder_run_id(stack, key, etag))
    victim = flow_run_process(stack, orphan["id"])
    with stack_left_healthy(stack):
        kill_service(stack, prefect_stack.WORKER)  # with its launchers: nobody reports the run's end
        victim.kill()
        victim.wait(timeout=10)
        assert bring_back(stack) == [prefect_stack.WORKER]
    assert flow_run(stack, orphan["id"])["state_type"] == "RUNNING"  # Prefect cannot know

    run_deployment_now(stack, "backfill/reconcile", {"bucket": stack.raw_bucket})
    report = wait_for_report(stack, key, etag, timeout=180)
    runs = wait_for_runs_to_finish(stack, key, at_least=2, timeout=120)
    orphan = flow_run(stack, orphan["id"])
    assert orphan["state_type"] == "CRASHED" and "lease ran out" in orphan["state"]["message"]
    # the rerun that did the work is the report's; any other run (the scheduled reconcile's
    # may have come too) found the version done or waited for the lock, and completed
    assert report["flow_run_id"] != orphan["id"]
    assert all(r["state_type"] == "COMPLETED" for r in runs if r["id"] != orphan["id"])
    assert report["flow_run_id"] in {r["id"] for r in runs}
    rows = marked_rows(stack, marker)
    assert len(rows) == report["powerbi_rows"] == report["exported_rows"] == 25_000
    assert report["powerbi_batches"] == 3 and not duplicated_ids(rows)
    assert sorted(row["id_venda"] for row in rows) == list(range(1, 25_001))  # batch 1 from the cache


# --- the relay --------------------------------------------------------------------------------
@services
def test_a_relay_killed_during_a_burst_of_uploads_loses_no_file_and_duplicates_none(
    stack: Settings,
) -> None:
    markers = [new_marker() for _ in range(6)]
    keys = [f"vendas/faults/relay/{marker}.csv" for marker in markers]
    etags = []
    with stack_left_healthy(stack):
        for i, (key, marker) in enumerate(zip(keys, markers)):
            if i == 2:
                kill_service(stack, ivi_stack.RELAY)
            if i == 4:
                assert bring_back(stack) == [ivi_stack.RELAY]
            etags.append(upload(stack, key, vendas_csv(10 + i, marker)))
    # uploads 2 and 3 found no relay: SeaweedFS retries a few times, then drops the event
    run_deployment_now(stack, "backfill/reconcile", {"bucket": stack.raw_bucket})
    for i, (key, etag, marker) in enumerate(zip(keys, etags, markers)):
        assert_processed_once(stack, key, etag, marker, 10 + i)


# --- Power BI ---------------------------------------------------------------------------------
FAULT_MINUTE = (("429", 20.0), ("500", 20.0), ("close", 20.0))


@services
def test_power_bi_failing_for_a_minute_with_429s_500s_and_dropped_connections_gets_every_row_once(
    stack: Settings, no_faults_left: None
) -> None:
    marker = new_marker()
    key = f"vendas/faults/powerbi/{marker}.csv"
    since = time.time()
    for kind, seconds in FAULT_MINUTE:  # back to back from the first rows request: 60 s
        queue_fault(stack, kind, 1, for_seconds=seconds, retry_after=3)
    etag = upload(stack, key, vendas_csv(25_000, marker))  # three batches
    report = assert_processed_once(stack, key, etag, marker, 25_000)
    assert report["powerbi_batches"] == 3
    assert sorted(row["id_venda"] for row in marked_rows(stack, marker)) == list(range(1, 25_001))

    requests = [r for r in standin_requests(stack) if r["received_at"] >= since]
    faulted = [r for r in requests if r["answer"] != "200"]
    assert {r["answer"] for r in faulted} == {"429", "500", "close"}
    span = faulted[-1]["received_at"] - faulted[0]["received_at"]
    assert 45 <= span <= 60, span  # the client kept trying through the whole minute
    assert [r["answer"] for r in requests].count("200") >= 3  # (the reconcile may push other files)
    # every attempt, refused ones included, stays within the service's 120 POSTs a minute
    assert most_posts_in_any_window([r["received_at"] for r in requests], 60.0) <= 120


# --- a full disk ------------------------------------------------------------------------------
@services
def test_a_full_temporary_disk_fails_the_run_clearly_and_leaves_the_original_untouched(
    stack: Settings, tmp_path: Path
) -> None:
    marker = new_marker()
    # bigger than the 2 MB disk (the fetch fails); and one that fits, but whose clean CSV and
    # JSON do not (the clean step fails)
    cases = {
        f"vendas/faults/disk/{marker}-big.csv": vendas_csv(30_000, marker),
        f"vendas/faults/disk/{marker}-fits.csv": vendas_csv(14_000, marker, first_id=100_001),
    }
    failing_step = dict(zip(cases, ("fetch", "clean")))
    client = s3(stack)
    with upload_trigger_disabled(stack):  # only the runs created here process these objects
        etags = {key: upload(stack, key, data) for key, data in cases.items()}
        with tiny_tmpfs(tmp_path / "tmp", "2m") as tmp:
            for key, data in cases.items():
                assert len(data) > 1_000_000
                run_id = create_run(
                    stack, "process_object/process-object",
                    {"bucket": stack.raw_bucket, "key": key, "etag": etags[key]},
                    job_variables={"env": {"TMPDIR": str(tmp)}},
                )
                failed = wait_for_final_state(stack, run_id)
                assert failed["state_type"] == "FAILED", failed["state"]
                message = failed["state"]["message"]
                assert f"no space left in the temporary directory {tmp}" in message, message
                assert "No space left on device" in message and "untouched" in message
                failed_tasks = [t["name"].rsplit("-", 1)[0] for t in task_runs(stack, run_id, failing_step[key])
                                if t["state_type"] == "FAILED"]
                assert failed_tasks == [failing_step[key]]
                assert list(tmp.iterdir()) == []  # its temporary directory went with it
        for key, data in cases.items():  # the original untouched, nothing half written
            assert client.stat_object(stack.raw_bucket, key).etag.strip('"') == etags[key]
            assert read_object(stack, stack.raw_bucket, key) == data
            base = key.removesuffix(".csv")
            for bucket, prefix in ((stack.processed_bucket, base), (stack.quarantine_bucket, base),
                                   (stack.quarantine_bucket, OutputKeys.for_key(key).original),
                                   (stack.processed_bucket, f"_reports/{base}")):
                assert [o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True)] == []
        assert marked_rows(stack, marker) == []
        # the disk freed (unmounted): a rerun processes each file fully
        reruns = [
            create_run(stack, "process_object/process-object",
                       {"bucket": stack.raw_bucket, "key": key, "etag": etags[key]})
            for key in cases
        ]
        for run_id in reruns:
            assert wait_for_final_state(stack, run_id)["state_type"] == "COMPLETED"
    for key, data in cases.items():
        report = wait_for_report(stack, key, etags[key])
        assert report["exported_rows"] == report["powerbi_rows"] == data.count(b"\n") - 1
    rows = marked_rows(stack, marker)
    assert len(rows) == 44_000 and not duplicated_ids(rows)


# --- the stand-in's outage windows --------------------------------------------------------------
def test_windowed_faults_answer_every_request_back_to_back_from_the_first_one() -> None:
    now = [100.0]
    queue = FaultQueue(clock=lambda: now[0])
    for kind, seconds in FAULT_MINUTE:
        queue.add("ds", Fault(kind, for_seconds=seconds))  # type: ignore[arg-type]
    queue.add("ds", Fault("500", count=1))
    seen = []
    for at in (100.0, 110.0, 119.9, 120.0, 139.9, 140.0, 159.9, 160.0, 161.0):
        now[0] = at
        fault = queue.take("ds")
        seen.append(fault.kind if fault else None)
    assert seen == ["429", "429", "429", "500", "500", "close", "close", "500", None]
    assert queue.take("other") is None
