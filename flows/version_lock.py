"""take-version-lock: one run at a time per object version, on any worker of any machine.

The lock is a lease in the object store (`objectstore/lease.py`; why the store, and what it
costs: docs/shared-state.md). What Prefect adds here: the task that waits for it (retried when
the store cannot be reached), asking Prefect whether a holder's run has ended, and marking a
dead holder's run Crashed when its lease ran out.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed, State
from prefect_aws import MinIOCredentials
from urllib3.exceptions import HTTPError

from blocks.pipeline import PipelineBuckets
from flows.run_context import current_flow_run_id
from objectstore import store
from objectstore.lease import ObjectStoreLease

# The version lock's lease: renewed every third of it while the run works, so a run that
# died (killed, OOM, its machine lost) frees the version this long after its last renewal.
LOCK_LEASE_SECONDS = 30.0
LOCK_WAIT_SECONDS = 3600.0  # a waiting run gives up after this (a live holder of a huge file)
LOCK_POLL_SECONDS = 1.0  # how often a waiting run checks whether the holder has ended


def _lock_holder() -> str:
    """Who takes a version's lock: `<flow run id> <host> <pid>` (the run id is what a waiting
    run asks Prefect about; host and pid are for the people reading the lock object)."""
    return f"{current_flow_run_id('no-flow-run')} {socket.gethostname()} {os.getpid()}"


def _holder_has_ended(holder: str) -> str | None:
    """Why the lock's holder no longer works under it, or None while it may.

    Its flow run is in a final state (Crashed, Failed, Cancelled, Completed) or deleted: a
    waiting run then takes over at once instead of waiting for the lease to run out (which it
    does when nobody told Prefect: a worker or machine that died with the run).
    """
    try:
        run_id = UUID(holder.split(" ")[0])
    except ValueError:  # not a flow run (a test calling the flow's function): the lease decides
        return None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(run_id).state
        except ObjectNotFound:
            return "its flow run was deleted"
    if state is not None and state.is_final():
        return f"its flow run is {state.type.value}"
    return None


def _mark_crashed(holder: str, why: str) -> None:
    """A holder whose lease ran out while Prefect still shows its run Running died without
    anybody telling Prefect (its worker or machine went with it): say so, so that the UI
    does not show it running forever."""
    try:
        run_id = UUID(holder.split(" ")[0])
    except ValueError:
        return
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(run_id).state
        except ObjectNotFound:
            return
        if state is not None and not state.is_final():
            client.set_flow_run_state(
                run_id,
                Crashed(message=f"lost its lock ({why}); flow run {current_flow_run_id('?')} took over its work"),
                force=True,
            )


def _retry_when_store_unreachable(task: Any, task_run: Any, state: State) -> bool:
    """The lock's store did not answer, or answered 5xx: a later attempt may get through.
    A lock still held after the wait is final."""
    try:
        state.result()
    except (BotoConnectionError, HTTPError, ConnectionError, TimeoutError):
        return True
    except ClientError as error:
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    except Exception:  # noqa: BLE001
        return False
    return False


@task(name="take-version-lock", retries=4, retry_delay_seconds=[1, 2, 4, 8],
      retry_condition_fn=_retry_when_store_unreachable, cache_policy=NO_CACHE)
def take_version_lock(lease: ObjectStoreLease) -> None:
    """Wait for the object version's lock, held in the object store that every worker shares.

    A run never processes without it: when the store cannot be reached the task retries, then
    fails the run with the store's error.
    """
    taken_over = lease.acquire(
        timeout=LOCK_WAIT_SECONDS, poll_seconds=LOCK_POLL_SECONDS, holder_has_ended=_holder_has_ended
    )
    if taken_over is not None:
        get_run_logger().warning("%s", taken_over)
        if taken_over.lease_ran_out:
            _mark_crashed(taken_over.holder, taken_over.reason)


def version_lock(
    buckets: PipelineBuckets, version: store.ObjectVersion, credentials: MinIOCredentials
) -> ObjectStoreLease:
    """The lock of one object version: exact bucket, key and eTag, in the processed bucket."""
    return ObjectStoreLease(
        credentials.get_client("s3"),
        buckets.processed_bucket,
        f"{version.bucket}/{version.key}@{version.etag}",
        _lock_holder(),
        lease_seconds=LOCK_LEASE_SECONDS,
    )
