"""Exactly once across machines: a second worker with its own PREFECT_HOME and data dir.

The second worker shares only what two machines would share: the Prefect server, the object
store and Power BI. It has no pre-warmed engine (its socket path is in its own data dir), so
its runs start as a plain `python -m prefect.engine`, as in a Compose replica or a pod. The
per-version lock and the Power BI batch cache must hold across the two: nothing of either may
live on a worker's disk.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import psutil
import pytest

from ivi import prefect_stack
from ivi.settings import Settings
from tests.paths import REPO_ROOT
from tests.fault_support import (
    _unix,
    bring_back,
    create_run,
    poll,
    stop_service,
    upload_trigger_disabled,
    wait_for_final_state,
    wait_for_no_runs_in_flight,
)
from objectstore.lease import ObjectStoreLease
from tests.pipeline_support import (
    flow_runs_for_key,
    minio_event,
    prefect_request,
    runs_that_processed,
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
    queue_fault,
    standin_requests,
    vendas_csv,
)
from tests.lake_support import commits_of_key, etags_of_key, lake_table
from tests.stack_support import auth_headers

pytestmark = pytest.mark.services

PROCESS_OBJECT = "process_object/process-object"
SECOND = "second-machine"
_SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run")


class SecondWorker:
    """A `prefect worker start` of the same pool, as on another machine."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.home = root / "prefect-home"
        self.data_dir = root / "data"
        self.log = root / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = prefect_stack.env(self.settings)
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_PROFILES_PATH": str(self.home / "profiles.toml"),
            "IVI_DATA_DIR": str(self.data_dir),
            "IVI_PREWARMED_ENGINE_SOCKET": str(self.data_dir / "no-engine-here.sock"),
        })
        return env

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [*prefect_stack.worker_command(self.settings)]
        command[command.index("--name") + 1] = SECOND
        since = time.time()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll(lambda: self._polled_since(since), "the second worker's first heartbeat", 120)

    def _polled_since(self, since: float) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()[-2000:]
        workers = prefect_request(
            "POST", f"{self.settings.prefect_api_url}/work_pools/{self.settings.work_pool}/workers/filter",
            json={},
        ).json()
        return any(
            w["name"] == SECOND and w.get("last_heartbeat_time") and _unix(w["last_heartbeat_time"]) >= since - 1
            for w in workers
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        parent = psutil.Process(self.process.pid)
        family = [parent, *parent.children(recursive=True)]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _gone, alive = psutil.wait_procs(family, timeout=10)
        for process in alive:
            process.kill()

    def run_process(self, flow_run_id: str) -> psutil.Process | None:
        """The process executing `flow_run_id` under this worker, if it runs one."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if child.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                    return child
            except psutil.Error:
                continue
        return None



@pytest.fixture(scope="module")
def second_worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondWorker]:
    worker = SecondWorker(stack, tmp_path_factory.mktemp("second-machine"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def quiet_stack(stack: Settings) -> Iterator[None]:
    """No run of an earlier test in flight, and no Power BI fault left queued."""
    wait_for_no_runs_in_flight(stack)
    clear_faults(stack)
    yield
    clear_faults(stack)


def worker_of(settings: Settings, flow_run_id: str) -> str:
    """The name of the worker that submitted the run (from the run's own log)."""
    def submitted_by() -> str | None:
        logs = prefect_request(
            "POST", f"{settings.prefect_api_url}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200},
        ).json()
        names = [m.group(1) for log in logs if (m := _SUBMITTED.search(log["message"]))]
        return names[0] if names else None

    return str(poll(submitted_by, f"the submitting worker of {flow_run_id} in its logs", 60))


def _runs_at_once(settings: Settings, key: str, etag: str, count: int, **extra: object) -> list[str]:
    parameters = {"bucket": settings.raw_bucket, "key": key, "etag": etag, **extra}
    return [create_run(settings, PROCESS_OBJECT, parameters) for _ in range(count)]


def _assert_pushed_once(settings: Settings, marker: str, rows: int) -> None:
    pushed = marked_rows(settings, marker)
    assert not duplicated_ids(pushed), f"{len(pushed) - len({r['id_venda'] for r in pushed})} rows twice"
    assert sorted(r["id_venda"] for r in pushed) == list(range(1, rows + 1))


def _assert_in_lake_once(settings: Settings, key: str, etag: str, rows: int) -> None:
    """The Delta table holds the version's rows once, from one commit (issue 15)."""
    table = lake_table(settings, "vendas")
    assert etags_of_key(table, key) == [etag] * rows
    assert len(commits_of_key(table, key)) == 1


def test_duplicate_deliveries_and_concurrent_runs_on_two_workers_push_every_row_once(
    stack: Settings, second_worker: SecondWorker, quiet_stack: None
) -> None:
    marker = new_marker()
    key = f"vendas/two-workers/{marker}.csv"
    data = vendas_csv(25_000, marker)
    with upload_trigger_disabled(stack):
        etag = upload(stack, key, data)
    # The test holds the version's lock until every run has started: each worker runs at most
    # 8 at once, so 10 runs waiting for the lock are spread over both machines for sure.
    lease = ObjectStoreLease(_s3_client(stack), stack.processed_bucket,
                             f"{stack.raw_bucket}/{key}@{etag}", "the-test")
    assert lease.acquire(timeout=5) is None
    try:
        body = minio_event(stack, quote_plus(key, safe="/"), etag, len(data))
        # The store's event, delivered three times: at most one run, since the relay gives a
        # version one event id and Prefect keeps one event per id (none at all when the
        # upload's own delivery, made while the trigger was off, took the id first).
        for _ in range(3):
            answer = httpx.post(f"{stack.relay_url}/minio/events", headers=auth_headers(stack), json=body,
                                timeout=10)
            assert answer.status_code == 200, answer.text
        made = _runs_at_once(stack, key, etag, 10)  # and runs made through the API at once
        poll(lambda: len([r for r in flow_runs_for_key(stack, key) if r["state_type"] == "RUNNING"]) >= 10,
             "ten runs waiting for the version's lock", 180, interval=0.5)
    finally:
        lease.release()
    runs = wait_for_runs_to_finish(stack, key, at_least=len(made), timeout=300)
    assert len(runs) <= len(made) + 1
    assert set(made) <= {run["id"] for run in runs}
    assert {run["state_type"] for run in runs} == {"COMPLETED"}, [run["state"] for run in runs]
    assert len(runs_that_processed(runs)) == 1
    workers = {worker_of(stack, run["id"]) for run in runs}
    assert SECOND in workers and len(workers) == 2, f"the runs all went to {workers}"
    _assert_pushed_once(stack, marker, 25_000)
    assert wait_for_report(stack, key, etag)["powerbi_rows"] == 25_000
    _assert_in_lake_once(stack, key, etag, 25_000)


def _s3_client(settings: Settings) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=settings.s3_endpoint, aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(), region_name=settings.s3_region,
    )


@contextmanager
def _only_the_other_worker(stack: Settings, second_worker: SecondWorker, busy: str) -> Iterator[str]:
    """Only the worker other than `busy` takes runs inside; its name."""
    if busy == SECOND:
        second_worker.stop()
        try:
            yield prefect_stack.worker_name(stack)
        finally:
            second_worker.start()
    else:
        stop_service(stack, prefect_stack.WORKER)
        try:
            yield SECOND
        finally:
            assert bring_back(stack) == [prefect_stack.WORKER]


def test_forced_reruns_on_two_workers_find_the_batches_in_the_shared_cache(
    stack: Settings, second_worker: SecondWorker, quiet_stack: None
) -> None:
    marker = new_marker()
    key = f"vendas/two-workers/{marker}.csv"
    etag = upload(stack, key, vendas_csv(15_000, marker))
    report = wait_for_report(stack, key, etag, timeout=120)
    posts_before = len(standin_requests(stack))
    # The reruns run on the machine that did not push the batches: which worker polls first
    # is chance (both take up to 8 runs), so the other one is stopped meanwhile.
    with _only_the_other_worker(stack, second_worker, worker_of(stack, str(report["flow_run_id"]))) as other:
        reruns = _runs_at_once(stack, key, etag, 6, force=True)
        finals = [wait_for_final_state(stack, run_id, timeout=240) for run_id in reruns]
    assert {run["state_type"] for run in finals} == {"COMPLETED"}
    assert {worker_of(stack, run_id) for run_id in reruns} == {other}
    _assert_pushed_once(stack, marker, 15_000)
    assert len(standin_requests(stack)) == posts_before  # every batch came from the cache
    _assert_in_lake_once(stack, key, etag, 15_000)  # no forced rerun committed again
    results = list(s3(stack).list_objects(stack.processed_bucket, prefix="_ivi/results/", recursive=True))
    assert results, "the batch cache lives in the shared bucket"


def test_a_run_killed_mid_export_on_one_worker_is_finished_by_the_other(
    stack: Settings, second_worker: SecondWorker, quiet_stack: None
) -> None:
    marker = new_marker()
    key = f"vendas/two-workers/{marker}.csv"
    # only the second machine takes runs while the first batch goes in and the second waits
    stop_service(stack, prefect_stack.WORKER)
    try:
        queue_fault(stack, "delay", 1, seconds=0)
        queue_fault(stack, "429", 1, retry_after=60)
        with upload_trigger_disabled(stack):
            etag = upload(stack, key, vendas_csv(25_000, marker))
        [run_id] = _runs_at_once(stack, key, etag, 1)
        poll(lambda: len(marked_rows(stack, marker)) == 10_000 and any(
            str(r["answer"]) == "429" for r in standin_requests(stack)[-5:]),
            "the first batch stored and the second refused", 120)
        assert worker_of(stack, run_id) == SECOND
        victim = second_worker.run_process(run_id)
        assert victim is not None, "the run's process on the second machine"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        second_worker.stop()  # the machine is gone with it
    finally:
        assert bring_back(stack) == [prefect_stack.WORKER]
    assert len(marked_rows(stack, marker)) == 10_000

    [rerun] = _runs_at_once(stack, key, etag, 1)
    final = wait_for_final_state(stack, rerun, timeout=240)
    assert final["state_type"] == "COMPLETED", final["state"]
    assert worker_of(stack, rerun) != SECOND
    report = wait_for_report(stack, key, etag)
    assert report["powerbi_rows"] == 25_000 and report["flow_run_id"] == rerun
    _assert_pushed_once(stack, marker, 25_000)
    second_worker.start()  # back for the tests after this one
