"""sweep-locks: delete the version locks' records that no run has written for a day (nightly).

Each object version processed leaves its lock record in `processed/_ivi/locks/` (released, or
with a lease that ran out): some 200 bytes of data and one object of metadata each, forever,
without this sweep. A record a day old is no lock, since a holder rewrites its record every
third of its 30 s lease; objectstore/lease.py says why the delete is safe and what it costs on
MinIO, which does not honour `If-Match` on a delete.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_aws import MinIOCredentials

from blocks.objectstore import MINIO_CREDENTIALS_BLOCK
from blocks.pipeline import load_buckets
from flows.version_lock import LOCK_LEASE_SECONDS, lease_s3_client
from objectstore.lease import Swept, sweep_lock_records

DEFAULT_OLDER_THAN_HOURS = 24.0


@task(name="sweep-lock-records", retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def sweep(bucket: str, credentials: MinIOCredentials, older_than_seconds: float) -> Swept:
    return sweep_lock_records(lease_s3_client(credentials), bucket, older_than_seconds=older_than_seconds)


@flow(name="sweep_locks", log_prints=False)
def sweep_locks(older_than_hours: float = DEFAULT_OLDER_THAN_HOURS) -> dict[str, int]:
    """Delete lock records older than `older_than_hours`; a cut-off within ten leases of a
    live holder's renewals is refused rather than risk deleting a held lock."""
    older_than_seconds = older_than_hours * 3600
    if older_than_seconds < 10 * LOCK_LEASE_SECONDS:
        raise ValueError(
            f"older_than_hours={older_than_hours} is too close to the lock's {LOCK_LEASE_SECONDS:.0f} s lease: "
            f"a held lock could be swept; use at least {10 * LOCK_LEASE_SECONDS / 3600:.3f}"
        )
    swept = sweep(load_buckets().processed_bucket, MinIOCredentials.load(MINIO_CREDENTIALS_BLOCK), older_than_seconds)
    get_run_logger().info("deleted %d lock record(s) older than %g h; %d kept", swept.deleted, older_than_hours, swept.kept)
    return {"deleted": swept.deleted, "kept": swept.kept}
