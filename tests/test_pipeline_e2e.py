"""Upload to outputs on the running embedded stack: store -> relay -> Prefect -> flow."""

from __future__ import annotations

import csv
import io
import json
import time
from urllib.parse import quote_plus

import httpx
import pytest

from flows.artifacts import artifact_key
from objectstore.store import OutputKeys
from ivi.demo import SAMPLES_DIR as SAMPLES
from ivi.settings import Settings
from tests.pipeline_support import (
    artifacts_with_key,
    minio_event,
    read_object,
    run_deployment_now,
    runs_that_processed,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.stack_support import auth_headers, prefect_request

pytestmark = pytest.mark.services

VENDAS = (
    "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF\n"
    "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
    "2;2024-01-06;Bob;Lápis;Papelaria;1;10;10;XX\n"
    "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
)


def test_an_upload_becomes_clean_outputs_a_report_and_artifacts(stack: Settings) -> None:
    data = (SAMPLES / "mock.csv").read_bytes()
    etag = upload(stack, "clientes/e2e/mock.csv", data)
    report = wait_for_report(stack, "clientes/e2e/mock.csv", etag)
    assert report["status"] == "processed"
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"]) == (10, 10, 0)
    assert report["source_bucket"] == stack.raw_bucket and report["flow_run_id"]
    clean = read_object(stack, stack.processed_bucket, "clientes/e2e/mock.csv").decode("utf-8")
    assert clean.splitlines()[1] == "1001,29,M,Solteiro,3500.0,12,5,150.0,2,8,0"
    rows = json.loads(read_object(stack, stack.processed_bucket, "clientes/e2e/mock.json"))
    assert len(rows) == 10 and rows[5]["estado_civil"] == "Viúvo"
    wait_for_runs_to_finish(stack, "clientes/e2e/mock.csv")
    assert artifacts_with_key(stack, artifact_key("report", "clientes/e2e/mock.csv"))
    assert artifacts_with_key(stack, artifact_key("rejected", "clientes/e2e/mock.csv"))


def test_bad_rows_go_to_quarantine_with_their_reasons(stack: Settings) -> None:
    key = "vendas/e2e/messy.csv"
    etag = upload(stack, key, VENDAS.encode("cp1252"))
    report = wait_for_report(stack, key, etag)
    assert (report["exported_rows"], report["quarantined_rows"], report["duplicate_rows"]) == (1, 1, 1)
    assert report["encoding"] == "windows-1252"
    rejected = list(csv.DictReader(io.StringIO(read_object(stack, stack.quarantine_bucket, "vendas/e2e/messy.rejected.csv").decode())))
    assert rejected[0]["_line"] == "3"
    assert rejected[0]["_errors"] == "uf: not a Brazilian state code ('XX')"


def test_repeated_event_is_processed_once(stack: Settings) -> None:
    key = "vendas/e2e/repeated.csv"
    data = VENDAS.encode("utf-8")
    etag = upload(stack, key, data)
    body = minio_event(stack, quote_plus(key, safe="/"), etag, len(data))
    for _ in range(3):
        answer = httpx.post(f"{stack.relay_url}/minio/events", json=body, headers=auth_headers(stack))
        assert answer.status_code in (200, 202, 204)
    wait_for_report(stack, key, etag)
    # the store's own events and the three deliveries share one event id per object version
    runs = wait_for_runs_to_finish(stack, key, at_least=1)
    assert len(runs_that_processed(runs)) == 1  # exactly one run did the work
    assert all(r["state_type"] == "COMPLETED" for r in runs)


def test_a_new_version_of_the_object_is_processed_again(stack: Settings) -> None:
    key = "vendas/e2e/versioned.csv"
    first = upload(stack, key, VENDAS.encode("utf-8"))
    assert wait_for_report(stack, key, first)["exported_rows"] == 1
    second = upload(stack, key, (VENDAS + "3;2024-01-07;Caio;Lápis;Papelaria;1;10;10;MG\n").encode())
    assert second != first
    report = wait_for_report(stack, key, second)
    assert report["exported_rows"] == 2
    assert len(read_object(stack, stack.processed_bucket, "vendas/e2e/versioned.csv").splitlines()) == 3


def test_keys_with_spaces_accents_plus_and_parentheses(stack: Settings) -> None:
    key = "vendas/e2e/relatório de vendas (nov)+extra.csv"
    etag = upload(stack, key, VENDAS.encode("utf-8"))
    report = wait_for_report(stack, key, etag)
    assert report["source_key"] == key
    assert read_object(stack, stack.processed_bucket, "vendas/e2e/relatório de vendas (nov)+extra.json")


def test_a_file_that_is_not_a_table_is_quarantined_untouched_and_its_run_fails(stack: Settings) -> None:
    key = "vendas/e2e/not-a-table.csv"
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    etag = upload(stack, key, data)
    report = wait_for_report(stack, key, etag)
    assert report["status"] == "rejected"
    assert report["reason"].startswith("not a text file")
    assert read_object(stack, stack.quarantine_bucket, OutputKeys.for_key(key).original) == data
    runs = wait_for_runs_to_finish(stack, key)
    failed = [r for r in runs if r["state_type"] == "FAILED"]
    assert failed and "not a text file" in failed[0]["state"]["message"]


def test_the_reconcile_processes_a_file_whose_event_was_lost(stack: Settings) -> None:
    """The store gives up on the webhook (observed: a receiver on the relay's port refuses
    every attempt until SeaweedFS logs the delivery dead and stops retrying), the relay comes
    back, no run but a reconcile's starts, and the reconcile is what processes the object.

    The reconcile also runs on its 5-minute cron: a tick that falls while the store gives up
    starts the object's run before ours does (CI saw it once), so every run is checked for
    who started it, rather than expecting none before ours."""
    from ivi import stack as ivi_stack
    from tests.fault_support import (
        RefusingWebhook,
        bring_back,
        flow_run,
        stop_service,
        wait_for_final_state,
        wait_until_seaweed_gives_up,
    )
    from tests.pipeline_support import flow_runs_for_key
    from tests.stack_support import assert_stays

    key = f"vendas/e2e/lost-event-{time.time_ns()}.csv"
    path = f"/buckets/{stack.raw_bucket}/{key}"
    reconcile_deployment = prefect_request(
        "GET", f"{stack.prefect_api_url}/deployments/name/backfill/reconcile").json()["id"]
    log_offset = ivi_stack.files(stack, "seaweedfs").log_file.stat().st_size
    stop_service(stack, "relay")
    try:
        with RefusingWebhook(stack) as hook:
            etag = upload(stack, key, VENDAS.encode("utf-8"))
            attempts = wait_until_seaweed_gives_up(stack, hook, path, log_offset)
    finally:
        bring_back(stack)  # the relay again
    print(f"\nSeaweedFS delivered {path} {len(attempts)} time(s) before giving up: "
          f"{[(round(at - attempts[0][0], 1), event_type) for at, event_type in attempts]}")
    # backfill gives each run it starts the idempotency key "<bucket>/<key>@<eTag>#<its own run id>"
    prefix = f"{stack.raw_bucket}/{key}@{etag}#"

    def started_by_a_reconcile(run: dict[str, object]) -> bool:
        idempotency_key = str(run["idempotency_key"] or "")
        if not idempotency_key.startswith(prefix):
            return False
        return flow_run(stack, idempotency_key.removeprefix(prefix))["deployment_id"] == reconcile_deployment

    assert_stays(lambda: all(started_by_a_reconcile(run) for run in flow_runs_for_key(stack, key)), seconds=5,
                 what="a run not started by a reconcile, for the object whose event the store gave up on")

    reconcile = run_deployment_now(stack, "backfill/reconcile", {"bucket": stack.raw_bucket})
    report = wait_for_report(stack, key, etag)
    assert report["exported_rows"] == 1
    runs = flow_runs_for_key(stack, key)
    assert report["flow_run_id"] in [run["id"] for run in runs]
    for run in runs:  # every run of the object, the one that wrote the report among them
        assert started_by_a_reconcile(run), run
    assert wait_for_final_state(stack, reconcile)["state_type"] == "COMPLETED"


def test_keys_that_differ_in_case_or_extension_keep_outputs_of_their_own_and_the_reconcile_converges(
    stack: Settings,
) -> None:
    import gzip

    from tests.fault_support import wait_for_final_state
    from tests.pipeline_support import flow_runs_for_key

    prefix = f"vendas/case-{time.time_ns()}/"
    header = VENDAS.splitlines()[0]
    row = "{0};2024-01-05;Ana;Caneta;Papelaria;1;10;10;SP"
    files = {  # each its own number of rows, so each output says whose it is
        f"{prefix}a.csv": "\n".join([header, *(row.format(i) for i in range(1, 2))]).encode(),
        f"{prefix}a.CSV": "\n".join([header, *(row.format(i) for i in range(1, 3))]).encode(),
        f"{prefix}a.csv.gz": gzip.compress("\n".join([header, *(row.format(i) for i in range(1, 4))]).encode()),
    }
    etags = {key: upload(stack, key, data) for key, data in files.items()}
    # the store's event starts runs for .csv and .CSV; the .csv.gz is run by hand
    gz = f"{prefix}a.csv.gz"
    run_deployment_now(stack, "process_object/process-object",
                       {"bucket": stack.raw_bucket, "key": gz, "etag": etags[gz]})
    reports = {key: wait_for_report(stack, key, etags[key]) for key in files}
    for rows, key in enumerate(files, start=1):
        assert reports[key]["source_key"] == key and reports[key]["exported_rows"] == rows
        clean = read_object(stack, stack.processed_bucket, OutputKeys.for_key(key).csv)
        assert len(clean.decode().splitlines()) == rows + 1, key
    outputs = [OutputKeys.for_key(key) for key in files]
    assert len({name for keys in outputs for name in (keys.csv, keys.json, keys.report)}) == 9
    for key in files:
        wait_for_runs_to_finish(stack, key)

    runs_before = {key: len(flow_runs_for_key(stack, key)) for key in files}
    backfill = run_deployment_now(stack, "backfill/backfill", {"bucket": stack.raw_bucket, "prefix": prefix})
    assert wait_for_final_state(stack, backfill)["state_type"] == "COMPLETED"
    # converged: the reconcile finds every version processed and starts nothing, for a while
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert {key: len(flow_runs_for_key(stack, key)) for key in files} == runs_before
        time.sleep(0.5)


def test_a_file_name_as_long_as_a_file_system_allows_is_processed(stack: Settings) -> None:
    """The run's local files have names of their own: a 236-byte last segment plus the
    client's download suffix (`.<eTag>.part.minio`, 45 bytes) would pass the file system's 255
    bytes. (The outputs add `.rejected.csv` to the name; SeaweedFS takes segments of up to 255.)"""
    stem = ("relatório-muito-longo-" * 12).encode()[: 236 - len(str(time.time_ns())) - 5].decode("utf-8", "ignore")
    name = f"{stem}-{time.time_ns()}.csv"
    assert 225 <= len(name.encode()) <= 236
    key = f"vendas/e2e/{name}"
    etag = upload(stack, key, VENDAS.encode("utf-8"))
    report = wait_for_report(stack, key, etag)
    assert report["status"] == "processed" and report["exported_rows"] == 1


def test_a_key_as_long_as_the_store_takes_is_processed_and_the_reconcile_converges(stack: Settings) -> None:
    """Output names are longer than their raw key (`.rejected.csv`, `_reports/`,
    `_rejected_files/`): for a key whose last segment has the store's 255 bytes, or whose whole
    has its 1024, they are shortened, and the run writes every output instead of failing on
    KeyTooLongError at every attempt (and at every reconcile after)."""
    from tests.fault_support import wait_for_final_state
    from tests.pipeline_support import flow_runs_for_key

    prefix = f"vendas/long-{time.time_ns()}/"
    last_segment = prefix + "n" * (255 - len(".csv")) + ".csv"
    whole = prefix + "/".join(["w" * 250] * 3) + "/"
    whole += "z" * (1024 - len(whole.encode()) - len(".csv")) + ".csv"
    assert (len(last_segment.rsplit("/", 1)[1].encode()), len(whole.encode())) == (255, 1024)
    files = {last_segment: VENDAS.encode("utf-8"), whole: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}
    etags = {key: upload(stack, key, data) for key, data in files.items()}

    processed = wait_for_report(stack, last_segment, etags[last_segment])
    assert (processed["status"], processed["exported_rows"], processed["quarantined_rows"]) == ("processed", 1, 1)
    assert processed["powerbi_rows"] == 1  # its batch's cache key (the version in it) is fitted too
    names = OutputKeys.for_key(last_segment)
    assert names.csv == last_segment  # it fits: the name people expect
    assert b"XX" in read_object(stack, stack.quarantine_bucket, names.rejected)  # shortened, found
    assert len(read_object(stack, stack.processed_bucket, names.json)) > 0

    rejected = wait_for_report(stack, whole, etags[whole])
    assert rejected["status"] == "rejected" and rejected["reason"].startswith("not a text file")
    assert read_object(stack, stack.quarantine_bucket, OutputKeys.for_key(whole).original) == files[whole]

    for key in files:
        assert all(run["state_type"] in ("COMPLETED", "FAILED") for run in wait_for_runs_to_finish(stack, key))
    runs_before = {key: len(flow_runs_for_key(stack, key)) for key in files}
    backfill = run_deployment_now(stack, "backfill/backfill", {"bucket": stack.raw_bucket, "prefix": prefix})
    assert wait_for_final_state(stack, backfill)["state_type"] == "COMPLETED"
    assert {key: len(flow_runs_for_key(stack, key)) for key in files} == runs_before  # both found done
