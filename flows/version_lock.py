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

import boto3
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed
from prefect_aws import MinIOCredentials
from urllib3.exceptions import HTTPError

from flows.retries import retry_when
from blocks.pipeline import PipelineBuckets
from flows.run_context import current_flow_run_id
from objectstore import store
from objectstore.lease import ObjectStoreLease

# The version lock's lease: renewed every third of it while the run works, so a run that
# died (killed, OOM, its machine lost) frees the version this long after its last renewal.
LOCK_LEASE_SECONDS = 30.0
LOCK_WAIT_SECONDS = 3600.0  # a waiting run gives up after this (a live holder of a huge file)
LOCK_POLL_SECONDS = 1.0  # how often a waiting run checks whether the holder has ended

# One boto3 session per process, made at import. A new session (what the block's
# `get_client` makes for every run) registers some 400 event handlers, each inspected, and
# loads the S3 model from JSON again: 50-100 ms of CPU a run. Made once here, and warmed by
# `prewarm` in the pre-warmed engine, every forked run inherits it ready.
_BOTO3_SESSION = boto3.session.Session()


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


# The lock's store did not answer, or answered 5xx: a later attempt may get through. A lock
# still held after the wait is final.
_retry_when_store_unreachable = retry_when(
    (BotoConnectionError, HTTPError, ConnectionError, TimeoutError),
    also=lambda error: isinstance(error, ClientError)
    and int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500,
)


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
        lease_s3_client(credentials),
        buckets.processed_bucket,
        f"{version.bucket}/{version.key}@{version.etag}",
        _lock_holder(),
        lease_seconds=LOCK_LEASE_SECONDS,
    )


def lease_s3_client(credentials: MinIOCredentials) -> Any:
    """A boto3 S3 client (it sends the conditional headers the lease needs) from the
    `minio-credentials` block, made from the process' one session."""
    params = credentials.aws_client_parameters.get_params_override()
    if credentials.region_name is not None:
        params["region_name"] = credentials.region_name
    return _BOTO3_SESSION.client(
        "s3",
        aws_access_key_id=credentials.minio_root_user,
        aws_secret_access_key=credentials.minio_root_password.get_secret_value(),
        **params,
    )


def prewarm() -> None:
    """Load the S3 model into the process' session (no connection is made)."""
    _BOTO3_SESSION.client(
        "s3", aws_access_key_id="prewarm", aws_secret_access_key="prewarm",
        region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
    )
