"""A run's logs reach the Prefect API (its page in the UI), with the pre-warmed engine and without.

For each way a run starts (forked by the pre-warmed engine, or `python -m prefect.engine`
started by the launcher when the engine is not running), five runs on the session's stack:
a processed file with one bad row, a file that is not a table, a run that crashes inside a
task (the not-a-table file again, forced, while block `ivi-pipeline` names a quarantine bucket
the S3 client refuses: the task that copies the original raises ValueError), and two `backfill`
runs (one with `PREFECT_LOGGING_LEVEL=DEBUG` in its job variables, which it must honour). Then `POST /api/logs/filter` for each run must
return Prefect's lines (flow start, every task's state, the final state), the flow's own
warnings, and for the crash the traceback. Logs are sent in batches: polled, with a deadline.

The first measurement of issue 13 found only the worker's two lines for every run the engine
forked: the child ended with `os._exit` before its log worker sent anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ivi import prefect_stack
from ivi.settings import Settings
from tests.fault_support import (
    create_run,
    poll,
    stack_left_healthy,
    stop_service,
    upload_trigger_disabled,
    wait_for_final_state,
)
from tests.pipeline_support import FINAL_STATES, flow_runs_for_key, runs_that_processed, upload
from tests.stack_support import pipeline_block_changed, prefect_request

pytestmark = pytest.mark.services

RUN_TIMEOUT_SECONDS = 120.0
LOG_TIMEOUT_SECONDS = 30.0  # batches leave every 2 s; the server writes them at once
INFO, WARNING, ERROR, DEBUG = 20, 30, 40, 10
VENDAS = (
    "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF\n"
    "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
    "2;2024-01-06;Bob;Lápis;Papelaria;1;10;10;XX\n"
).encode()
NOT_A_TABLE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
NOT_A_BUCKET = "not a bucket"  # a misconfigured worker: the S3 client refuses the name


@dataclass(frozen=True)
class Runs:
    prefix: str
    processed: str
    rejected: str
    crashed: str
    backfill: str
    backfill_debug: str
    grouped: str  # the process_object subflow of an object in a process-objects run


@pytest.fixture(scope="module", params=["prewarmed-engine", "launcher-alone"])
def runs(request: pytest.FixtureRequest, stack: Settings) -> Iterator[Runs]:
    """The five runs of one way of starting, all ended (the engine is back when they have)."""
    prefix = f"vendas/run-logs-{request.param}/"
    if request.param == "prewarmed-engine":
        assert prefect_stack.engine_is_ready(stack)
        yield _start_and_finish(stack, prefix)
        return
    with stack_left_healthy(stack):  # starts the engine again, and waits until all answers
        stop_service(stack, prefect_stack.ENGINE)
        assert not prefect_stack.engine_is_ready(stack)
        found = _start_and_finish(stack, prefix)
    yield found


def _start_and_finish(settings: Settings, prefix: str) -> Runs:
    keys = {"processed": f"{prefix}ok.csv", "rejected": f"{prefix}not-a-table.csv"}
    upload(settings, keys["processed"], VENDAS)
    upload(settings, keys["rejected"], NOT_A_TABLE)
    backfill = create_run(settings, "backfill/backfill",
                          {"bucket": settings.raw_bucket, "prefix": f"{prefix}nothing-here/"})
    backfill_debug = create_run(
        settings, "backfill/backfill",
        {"bucket": settings.raw_bucket, "prefix": f"{prefix}nothing-here-either/"},
        job_variables={"env": {"PREFECT_LOGGING_LEVEL": "DEBUG"}},
    )
    # An object of a burst's group (relay/dispatch.py): a process-objects run, created here
    # so that the object is in a group whatever the timing of the uploads.
    grouped_key = f"{prefix}grouped.csv"
    with upload_trigger_disabled(settings):
        upload(settings, grouped_key, VENDAS)
    group = create_run(settings, "process_objects/process-objects",
                       {"objects": [{"bucket": settings.raw_bucket, "key": grouped_key}]})
    found = {name: _the_run_of(settings, key)["id"] for name, key in keys.items()}
    found["grouped"] = _the_run_of(settings, grouped_key)["id"]
    assert wait_for_final_state(settings, group, timeout=RUN_TIMEOUT_SECONDS)["state_type"] == "COMPLETED"
    for run_id in (backfill, backfill_debug):
        wait_for_final_state(settings, run_id, timeout=RUN_TIMEOUT_SECONDS)
    # Last, alone: a misconfigured pipeline block (a quarantine bucket name the S3 client
    # refuses) makes the task that copies the rejected original raise ValueError.
    with pipeline_block_changed(settings, quarantine_bucket=NOT_A_BUCKET):
        crashed = create_run(
            settings, "process_object/process-object",
            {"bucket": settings.raw_bucket, "key": keys["rejected"], "force": True},
        )
        wait_for_final_state(settings, crashed, timeout=RUN_TIMEOUT_SECONDS)
    return Runs(prefix, crashed=crashed, backfill=backfill, backfill_debug=backfill_debug, **found)


def _the_run_of(settings: Settings, key: str) -> dict[str, Any]:
    """The process_object run that processed the upload of `key`, once it has ended (the
    5-minute reconcile may have started another that found the work done)."""
    def ended() -> dict[str, Any] | None:
        runs = runs_that_processed(flow_runs_for_key(settings, key))
        return runs[0] if len(runs) == 1 and runs[0]["state_type"] in FINAL_STATES else None

    return dict(poll(ended, f"the run of {key} to end", RUN_TIMEOUT_SECONDS, interval=0.5))


def run_logs(settings: Settings, flow_run_id: str) -> list[dict[str, Any]]:
    response = prefect_request(
        "POST", f"{settings.prefect_api_url}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
    )
    return list(response.json())


Wanted = tuple[str, int, tuple[str, ...]]  # logger, level, texts that one message holds


def wait_for_logs(settings: Settings, flow_run_id: str, wanted: list[Wanted]) -> list[dict[str, Any]]:
    """The run's logs once each wanted line is among them (AssertionError naming the missing)."""
    def missing(logs: list[dict[str, Any]]) -> list[Wanted]:
        return [
            (name, level, texts) for name, level, texts in wanted
            if not any(log["name"] == name and log["level"] == level
                       and all(text in log["message"] for text in texts) for log in logs)
        ]

    last: list[dict[str, Any]] = []

    def complete() -> list[dict[str, Any]] | None:
        last[:] = run_logs(settings, flow_run_id)
        return None if missing(last) else list(last)

    try:
        return list(poll(complete, f"the logs of flow run {flow_run_id}", LOG_TIMEOUT_SECONDS, interval=0.5))
    except AssertionError:
        seen = "\n".join(f"  {log['level']} {log['name']}: {log['message'][:160]!r}" for log in last)
        raise AssertionError(f"flow run {flow_run_id}: no log line {missing(last)}; it has:\n{seen}") from None


FLOW, TASK = "prefect.flow_runs", "prefect.task_runs"
# "Beginning flow run 'x' for flow 'process_object'", or "Beginning subflow run ..." when the
# object's run is part of a burst's group (the relay groups uploads that arrive together).
BEGINNING_PROCESS_OBJECT = ("Beginning ", "run ", "for flow 'process_object'")


def test_a_processed_run_logs_its_tasks_its_warning_and_its_end(stack: Settings, runs: Runs) -> None:
    wait_for_logs(stack, runs.processed, [
        (FLOW, INFO, BEGINNING_PROCESS_OBJECT),
        (TASK, INFO, ("Finished in state Completed()",)),
        (FLOW, WARNING, (f"{runs.prefix}ok.csv: 1 of 2 rows quarantined",)),
        (FLOW, INFO, ("Finished in state Completed(", "2 rows -> 1 exported, 1 quarantined")),
    ])
    task_lines = [log for log in run_logs(stack, runs.processed) if log["name"] == TASK]
    assert len(task_lines) >= 6  # fetch, validate, clean, export-csv, export-powerbi, write-report


def test_a_rejected_run_logs_why_as_a_warning(stack: Settings, runs: Runs) -> None:
    wait_for_logs(stack, runs.rejected, [
        (FLOW, INFO, BEGINNING_PROCESS_OBJECT),
        (TASK, INFO, ("Finished in state Completed()",)),  # fetch
        (TASK, ERROR, ("Finished in state Failed(", "FileRejected", "not a text file")),  # validate
        (FLOW, WARNING, (f"{runs.prefix}not-a-table.csv rejected: not a text file", "s3://")),
        (FLOW, INFO, ("Finished in state Failed(", "rejected: not a text file")),
    ])


def test_a_run_that_crashes_in_a_task_logs_the_traceback(stack: Settings, runs: Runs) -> None:
    wait_for_logs(stack, runs.crashed, [
        (FLOW, INFO, ("Beginning flow run",)),
        (TASK, ERROR, ("Finished in state Failed(", "ValueError", NOT_A_BUCKET)),
        (FLOW, ERROR, ("Traceback (most recent call last)", "in quarantine_original", NOT_A_BUCKET)),
        (FLOW, INFO, ("Finished in state Failed(", "ValueError", NOT_A_BUCKET)),
    ])


def test_an_object_of_a_group_logs_under_its_own_run(stack: Settings, runs: Runs) -> None:
    """A burst's objects run as subflows of one process-objects run: each still has its page,
    with its own lines, under its own flow run id."""
    run = prefect_request("GET", f"{stack.prefect_api_url}/flow_runs/{runs.grouped}").json()
    assert run["parent_task_run_id"] is not None  # a subflow
    wait_for_logs(stack, runs.grouped, [
        (FLOW, INFO, ("Beginning subflow run", "for flow 'process_object'")),
        (TASK, INFO, ("Finished in state Completed()",)),
        (FLOW, WARNING, (f"{runs.prefix}grouped.csv: 1 of 2 rows quarantined",)),
        (FLOW, INFO, ("Finished in state Completed(", "2 rows -> 1 exported, 1 quarantined")),
    ])


def test_a_backfill_run_logs_what_it_started(stack: Settings, runs: Runs) -> None:
    wait_for_logs(stack, runs.backfill, [
        (FLOW, INFO, ("Beginning flow run", "backfill")),
        (TASK, INFO, ("Finished in state Completed()",)),  # list-unprocessed, list-scheduled
        (FLOW, INFO, ("started 0 process_object run(s)", f"{runs.prefix}nothing-here/")),
        (FLOW, INFO, ("Finished in state Completed(",)),
    ])


def test_a_run_logs_at_the_level_its_deployment_sets(stack: Settings, runs: Runs) -> None:
    # The engine imported Prefect (and read its settings) long before this run's environment
    # existed: the run must still honour what its job variables say.
    wait_for_logs(stack, runs.backfill_debug, [
        (FLOW, DEBUG, ("Executing flow 'backfill'",)),
        (FLOW, INFO, ("started 0 process_object run(s)",)),
    ])
    assert not any(log["level"] == DEBUG for log in run_logs(stack, runs.backfill))
