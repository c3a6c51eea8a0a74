"""Helpers for tests of the Power BI export on the running stack (stand-in started by `ivi up`).

Every test marks its rows with a `cliente` value of its own and counts only those in the
contract's stand-in dataset, which all `vendas` uploads of the session share (as they would
share one Power BI dataset).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import psutil

from blocks.powerbi_setup import standin_dataset_id
from ivi import prefect_stack
from ivi import stack as ivi_stack
from ivi.processes import running
from ivi.settings import Settings

VENDAS_HEADER = "id_venda,data_venda,cliente,produto,categoria,quantidade,preco_unitario,valor_total,uf\n"


def new_marker() -> str:
    return f"cliente-{uuid.uuid4().hex[:10]}"


def vendas_csv(rows: int, marker: str, first_id: int = 1) -> bytes:
    """`rows` valid `vendas` rows whose `cliente` is `marker` (ids from `first_id`)."""
    lines = [VENDAS_HEADER]
    for number in range(first_id, first_id + rows):
        quantity = 1 + number % 5
        lines.append(
            f"{number},2024-01-{1 + number % 28:02d},{marker},Caneta {number % 7},Papelaria,"
            f"{quantity},10.5,{quantity * 10.5:.2f},SP\n"
        )
    return "".join(lines).encode()


def standin(settings: Settings, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method, f"{settings.powerbi_standin_url}{path}",
        headers=settings.powerbi_standin_admin_headers, timeout=60, **kwargs,
    )
    response.raise_for_status()
    return response.json()


def marked_rows(settings: Settings, marker: str, contract: str = "vendas") -> list[dict[str, Any]]:
    """The rows of `marker` that the contract's stand-in dataset holds."""
    body = standin(
        settings, "GET", f"/_standin/datasets/{standin_dataset_id(contract)}/rows",
        params={"limit": 2_000_000},
    )
    return [row for row in body["rows"] if row.get("cliente") == marker]


def duplicated_ids(rows: list[dict[str, Any]], column: str = "id_venda") -> list[Any]:
    return [value for value, count in Counter(row[column] for row in rows).items() if count > 1]


def dataset_state(settings: Settings, contract: str = "vendas") -> dict[str, Any]:
    """Row count, pending requests and POSTs in the last minute of the stand-in dataset."""
    return dict(standin(settings, "GET", f"/_standin/datasets/{standin_dataset_id(contract)}"))


def post_times(settings: Settings, contract: str = "vendas", since: float = 0.0) -> list[float]:
    """Arrival times (Unix) of the POSTs the stand-in dataset accepted since `since`."""
    body = standin(settings, "GET", f"/_standin/datasets/{standin_dataset_id(contract)}/posts")
    return [post["received_at"] for post in body["posts"] if post["received_at"] >= since]


def standin_requests(settings: Settings, contract: str = "vendas") -> list[dict[str, Any]]:
    """Every rows request the stand-in dataset got, refused ones too, with its answer."""
    body = standin(settings, "GET", f"/_standin/datasets/{standin_dataset_id(contract)}/requests")
    return list(body["requests"])


def queue_fault(settings: Settings, kind: str, count: int = 1, contract: str = "vendas", **extra: float) -> None:
    standin(
        settings, "POST", "/_standin/faults",
        json={"dataset_id": standin_dataset_id(contract), "kind": kind, "count": count, **extra},
    )


def clear_faults(settings: Settings) -> None:
    standin(settings, "DELETE", "/_standin/faults")


def most_posts_in_any_window(times: list[float], seconds: float = 60.0) -> int:
    """The largest number of POSTs that arrived within one `seconds`-long span."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _stdout_target(process: psutil.Process) -> str | None:
    try:
        return os.readlink(f"/proc/{process.pid}/fd/1")
    except OSError:
        return None


def flow_run_process(settings: Settings, flow_run_id: str) -> psutil.Process:
    """The process that executes a flow run: the pre-warmed engine's child forked for it.

    The worker starts a launcher (`deployments/prewarmed_start.py`, with the run id in its
    environment), which hands its standard streams to the engine's forked child: the child
    is the engine's child whose stdout is the launcher's stdout (the same pipe).
    """
    worker = running(ivi_stack.files(settings, prefect_stack.WORKER))
    engine = running(ivi_stack.files(settings, prefect_stack.ENGINE))
    assert worker is not None and engine is not None, "the worker and the engine must run"
    launchers = []
    for process in worker.children(recursive=True):
        try:
            if process.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                launchers.append(process)
        except psutil.Error:
            continue
    assert launchers, f"no launcher for flow run {flow_run_id}"
    for launcher in launchers:  # no engine socket: the launcher became the engine itself
        if "prefect.engine" in " ".join(launcher.cmdline()):
            return launcher
    targets = {_stdout_target(launcher) for launcher in launchers} - {None}
    children = [child for child in engine.children() if _stdout_target(child) in targets]
    assert len(children) == 1, f"expected one engine child for {flow_run_id}, found {children}"
    return children[0]
