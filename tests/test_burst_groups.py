"""A burst of uploads on the running stack: the relay groups its objects (relay/dispatch.py),
one process-objects run takes each group, and each object is still its own process_object
run (a subflow of the group's), processed once, with its report naming that run."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ivi.settings import Settings
from tests.fault_support import create_run, poll, upload_trigger_disabled, wait_for_final_state
from tests.pipeline_support import FINAL_STATES, flow_runs_for_key, upload, wait_for_report
from tests.stack_support import prefect_request, relay_objects_grouping

pytestmark = pytest.mark.services

FILES = 6
VENDAS = (
    "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF\n"
    "{n};05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n"
)


def group_runs(settings: Settings, keys: set[str]) -> list[dict[str, Any]]:
    """The process_objects runs that name any of `keys`."""
    runs = prefect_request(
        "POST", f"{settings.prefect_api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["process_objects"]}}, "limit": 200, "sort": "EXPECTED_START_TIME_DESC"},
    ).json()
    return [run for run in runs if keys & {ref["key"] for ref in run["parameters"].get("objects", [])}]


def parent_flow_run_id(settings: Settings, run: dict[str, Any]) -> str | None:
    if run["parent_task_run_id"] is None:
        return None
    task_run = prefect_request("GET", f"{settings.prefect_api_url}/task_runs/{run['parent_task_run_id']}").json()
    return str(task_run["flow_run_id"])


def test_a_burst_runs_in_groups_and_each_object_once_in_its_own_subflow(stack: Settings) -> None:
    prefix = f"vendas/burst-{uuid.uuid4().hex[:8]}"
    files = {f"{prefix}/{n}.csv": VENDAS.format(n=n).encode() for n in range(FILES)}
    with ThreadPoolExecutor(FILES) as pool:  # arriving together, within the relay's window
        etags = dict(zip(files, pool.map(lambda item: upload(stack, *item), files.items()), strict=True))
    reports = {key: wait_for_report(stack, key, etag, timeout=180) for key, etag in etags.items()}

    groups = group_runs(stack, set(files))
    assert groups, "no process-objects run took any object of the burst"
    grouped = {ref["key"]: run for run in groups for ref in run["parameters"]["objects"] if ref["key"] in files}
    assert len(grouped) >= 2 and len(groups) < len(grouped), "the burst was not grouped"
    assert all(ref["etag"] == etags[ref["key"]] for run in groups for ref in run["parameters"]["objects"]
               if ref["key"] in files)

    for key, report in reports.items():
        assert report["status"] == "processed" and report["exported_rows"] == 1, key
        runs = poll(lambda key=key: (found := flow_runs_for_key(stack, key))
                    and all(r["state_type"] in FINAL_STATES for r in found) and found, f"the runs of {key}", 60)
        [worked] = [run for run in runs if run["id"] == report["flow_run_id"]]
        assert worked["state_type"] == "COMPLETED", key
        # every other run of the key (a duplicate delivery, the reconcile) found the work done
        assert all(r["state_type"] == "COMPLETED" for r in runs), (key, runs)
        if key in grouped:
            assert parent_flow_run_id(stack, worked) == grouped[key]["id"], key

    for run in groups:
        final = poll(lambda run=run: (found := prefect_request(
            "GET", f"{stack.prefect_api_url}/flow_runs/{run['id']}").json())["state_type"] in FINAL_STATES and found,
            "the group's run to end", 60)
        assert final["state_type"] == "COMPLETED", final["state"]
        assert final["state"]["message"] == f"{len(run['parameters']['objects'])} object(s) processed"
    assert relay_objects_grouping(stack) == 0


def test_one_object_of_a_group_that_fails_does_not_stop_the_others(stack: Settings) -> None:
    """A rejected file's run ends Failed (as it does alone); the group's next object is still
    processed, and the group's run fails naming the one that did not complete."""
    prefix = f"vendas/group-{uuid.uuid4().hex[:8]}"
    files = {f"{prefix}/not-a-table.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
             f"{prefix}/fine.csv": VENDAS.format(n=1).encode()}
    with upload_trigger_disabled(stack):  # only the group made here processes them
        etags = {key: upload(stack, key, data) for key, data in files.items()}
    group = create_run(stack, "process_objects/process-objects",
                       {"objects": [{"bucket": stack.raw_bucket, "key": key, "etag": etags[key]} for key in files]})
    final = wait_for_final_state(stack, group, timeout=180)
    assert final["state_type"] == "FAILED", final["state"]
    assert final["state"]["message"] == (f"1 of 2 object(s) did not complete: "
                                         f"s3://{stack.raw_bucket}/{prefix}/not-a-table.csv (FAILED)")
    reports = {key: wait_for_report(stack, key, etag, timeout=60) for key, etag in etags.items()}
    assert [reports[key]["status"] for key in files] == ["rejected", "processed"]
    for key, report in reports.items():
        [run] = [r for r in flow_runs_for_key(stack, key) if r["id"] == report["flow_run_id"]]
        assert parent_flow_run_id(stack, run) == group, key
