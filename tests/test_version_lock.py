"""The version lock held in the object store (objectstore/lease.py), against the real S3 server
of the test stack: one holder at a time across clients that share nothing but the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from flows.version_lock import _retry_when_store_unreachable
from ivi.settings import Settings
from objectstore.lease import LeaseLost, LockTimeout, ObjectStoreLease, lock_object_key
from objectstore.store import read_object
from tests.fault_support import poll
from tests.pipeline_support import s3
from tests.stack_support import free_ports

pytestmark = pytest.mark.services


def _s3(settings: Settings, endpoint: str | None = None) -> Any:
    """A client of its own, as another machine would have."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint or settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )


@pytest.fixture
def resource(request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"raw/locks/{request.node.name}-{time.time_ns()}.csv@etag1"


def _lease(stack: Settings, resource: str, holder: str, seconds: float = 30.0) -> ObjectStoreLease:
    return ObjectStoreLease(_s3(stack), stack.processed_bucket, resource, holder, lease_seconds=seconds)


def test_twelve_runs_racing_for_one_version_hold_it_one_at_a_time(stack: Settings, resource: str) -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    order: list[str] = []
    guard = threading.Lock()

    def run(name: str) -> None:
        lease = _lease(stack, resource, name)
        lease.acquire(timeout=60, poll_seconds=0.05)
        with guard:
            inside.append(name)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
        time.sleep(0.05)  # the critical section: work under the lock
        with guard:
            inside.remove(name)
            order.append(name)
        lease.release()

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(order) == sorted(f"run-{i}" for i in range(12))
    assert overlaps == []


def test_a_held_lock_makes_the_next_run_wait_and_give_up_with_the_holders_name(
    stack: Settings, resource: str
) -> None:
    holder = _lease(stack, resource, "run-a host-1 42")
    assert holder.acquire(timeout=5) is None
    started = time.monotonic()
    with pytest.raises(LockTimeout, match="still held by run-a host-1 42"):
        _lease(stack, resource, "run-b").acquire(timeout=1.5, poll_seconds=0.2)
    assert time.monotonic() - started >= 1.5
    holder.release()
    assert _lease(stack, resource, "run-b").acquire(timeout=1) is None  # released: free at once


def test_keys_that_differ_in_case_extension_or_etag_have_locks_of_their_own(stack: Settings) -> None:
    stamp = time.time_ns()
    resources = [f"raw/v/{stamp}/a.csv@e1", f"raw/v/{stamp}/a.CSV@e1", f"raw/v/{stamp}/a.csv.gz@e1",
                 f"raw/v/{stamp}/a.csv@e2"]
    assert len({lock_object_key(r) for r in resources}) == len(resources)
    leases = [_lease(stack, r, f"run-{i}") for i, r in enumerate(resources)]
    for lease in leases:
        assert lease.acquire(timeout=1) is None  # none waits for another
    for lease in leases:
        lease.release()


def test_a_holder_that_stops_renewing_is_taken_over_after_its_lease_and_learns_it_lost(
    stack: Settings, resource: str
) -> None:
    dead = _lease(stack, resource, "run-dead", seconds=2)
    dead.acquire(timeout=1)
    dead._stop.set()  # its process froze: no more renewals  # noqa: SLF001
    started = time.monotonic()
    taken = _lease(stack, resource, "run-next").acquire(timeout=30, poll_seconds=0.2)
    assert taken is not None and taken.holder == "run-dead" and taken.lease_ran_out
    assert time.monotonic() - started >= 1.0  # not before the lease ran out
    dead.renew()  # it wakes up and tries to go on
    with pytest.raises(LeaseLost, match="took it over"):
        dead.check()


def test_a_live_holder_keeps_its_lock_past_the_lease_by_renewing(stack: Settings, resource: str) -> None:
    live = _lease(stack, resource, "run-live", seconds=1.5)
    live.acquire(timeout=1)
    with pytest.raises(LockTimeout):
        _lease(stack, resource, "run-other").acquire(timeout=4, poll_seconds=0.3)
    live.check()
    live.release()


def test_a_holder_whose_flow_run_ended_is_taken_over_at_once(stack: Settings, resource: str) -> None:
    _lease(stack, resource, "run-crashed host 1").acquire(timeout=1)
    ended = {"run-crashed host 1": "its flow run is CRASHED"}
    started = time.monotonic()
    taken = _lease(stack, resource, "run-next").acquire(
        timeout=20, poll_seconds=0.2, holder_has_ended=ended.get
    )
    assert taken is not None and taken.reason == "its flow run is CRASHED" and not taken.lease_ran_out
    assert time.monotonic() - started < 5


def test_an_unreachable_store_raises_and_the_lock_task_retries_it(stack: Settings, resource: str) -> None:
    [closed_port] = free_ports(1)
    lease = ObjectStoreLease(
        _s3(stack, f"http://127.0.0.1:{closed_port}"), stack.processed_bucket, resource, "run-a"
    )
    with pytest.raises(EndpointConnectionError) as raised:
        lease.acquire(timeout=1)

    class _Failed:
        def result(self) -> None:
            raise raised.value

    assert _retry_when_store_unreachable(None, None, _Failed())  # type: ignore[arg-type]
    with pytest.raises(LeaseLost, match="not held"):
        lease.check()  # a run never goes on without it


# --- the nightly sweep of lock records ---------------------------------------------------------
@pytest.fixture
def lock_bucket(stack: Settings, request: pytest.FixtureRequest) -> Iterator[str]:
    """A bucket of the test's own: a sweep sees only the records the test made."""
    client = _s3(stack)
    name = f"locks-{time.time_ns()}"
    client.create_bucket(Bucket=name)
    yield name
    for listed in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=listed["Key"])
    client.delete_bucket(Bucket=name)


def _record_exists(stack: Settings, bucket: str, resource: str) -> bool:
    return read_object(s3(stack), bucket, lock_object_key(resource)) is not None


def test_the_sweep_deletes_released_and_dead_records_and_never_a_held_one(stack: Settings, lock_bucket: str) -> None:
    from objectstore.lease import sweep_lock_records

    def lease(resource: str, seconds: float) -> ObjectStoreLease:
        return ObjectStoreLease(_s3(stack), lock_bucket, resource, f"holder of {resource}", lease_seconds=seconds)

    released, dead, held = lease("raw/a.csv@1", 30), lease("raw/b.csv@1", 0.3), lease("raw/c.csv@1", 0.6)
    for each in (released, dead, held):
        assert each.acquire(timeout=5) is None
    released.release()
    dead._stop.set()  # a holder that died: it stops renewing and never releases  # noqa: SLF001
    assert sweep_lock_records(_s3(stack), lock_bucket, older_than_seconds=3600).deleted == 0  # none that old

    def swept_both() -> bool:
        result = sweep_lock_records(_s3(stack), lock_bucket, older_than_seconds=4)
        held.check()  # renewed every 0.2 s, so never 4 s old (a margin for a busy machine): never swept
        assert _record_exists(stack, lock_bucket, held.resource)
        return not _record_exists(stack, lock_bucket, released.resource) and not (
            _record_exists(stack, lock_bucket, dead.resource)) and result.kept >= 1

    poll(swept_both, "the released and the dead record to be swept", 30, interval=0.5)
    held.check()
    held.release()
    # a swept version is as free as a new one
    assert lease("raw/a.csv@1", 30).acquire(timeout=5) is None


def test_the_sweep_keeps_a_record_rewritten_since_it_was_listed(stack: Settings, lock_bucket: str) -> None:
    """The delete carries `If-Match` on the eTag listed: SeaweedFS answers 412 for a record a
    run rewrote in between (MinIO ignores the condition: objectstore/lease.py)."""
    from objectstore.lease import delete_if_unchanged

    lease = ObjectStoreLease(_s3(stack), lock_bucket, "raw/d.csv@1", "run-a", lease_seconds=30)
    assert lease.acquire(timeout=5) is None
    [listed] = _s3(stack).list_objects_v2(Bucket=lock_bucket)["Contents"]
    lease.renew()  # the holder rewrites its record after the listing
    assert delete_if_unchanged(_s3(stack), lock_bucket, listed["Key"], listed["ETag"]) is False
    assert _record_exists(stack, lock_bucket, "raw/d.csv@1")
    lease.check()
    lease.release()


def test_the_sweep_refuses_a_cut_off_close_to_the_lease() -> None:
    from flows.sweep_locks import sweep_locks

    with pytest.raises(ValueError, match="too close to the lock's 30 s lease"):
        sweep_locks.fn(older_than_hours=0.01)


def test_the_sweep_deployment_runs_on_the_stack_and_keeps_the_records_of_today(stack: Settings) -> None:
    from tests.fault_support import create_run, wait_for_final_state

    lease = _lease(stack, f"raw/sweep-{time.time_ns()}.csv@1", "run-today")
    assert lease.acquire(timeout=5) is None
    lease.release()
    run = create_run(stack, "sweep_locks/sweep-locks", {"older_than_hours": 24})
    final = wait_for_final_state(stack, run)
    assert final["state_type"] == "COMPLETED", final["state"]
    assert _record_exists(stack, stack.processed_bucket, lease.resource)
