"""A lease lock held in the object store itself, for workers that share nothing but it.

Why the store: every topology (one machine, Compose with scaled workers, Kubernetes with a pod
per run) already shares the object store, and both SeaweedFS and MinIO honour S3's
conditional writes: `PutObject` with `If-None-Match: *` fails with 412 when the key exists, and
with `If-Match: <eTag>` when the object changed since it was read. Those two are enough for a
lock that needs no extra service:

- **take**: create the lock object with `If-None-Match: *`; one writer wins, the others get 412;
- **take over**: a lock whose lease ran out (or whose holder is known to have ended, or that
  was released) is overwritten with `If-Match: <the eTag read>`; of several runs that try at
  once, exactly one wins;
- **renew**: the holder rewrites its record with `If-Match` every third of the lease; a 412
  means somebody took the lock over, and the holder learns it has lost it;
- **release**: the holder writes a `released` record with `If-Match` (a later taker overwrites
  it). The record is not deleted then: a delete is not conditional on every S3 server (MinIO
  ignores `If-Match` on DeleteObject), and an unconditional one could remove a lock another
  run took over in between.
- **sweep** (`sweep_lock_records`, nightly): a record nobody rewrote for a day is no lock
  (a holder rewrites its record every third of its lease), so it is deleted, with `If-Match`
  on the eTag listed where the store honours it (SeaweedFS, S3).

A lease's age is judged on the store's clock only (the record's Last-Modified against the
`Date` of the answer that read it), so the workers' clocks may disagree.

No Prefect here: the flows wrap it in a task (retries when the store cannot be reached) and
give it a way to ask whether a holder's flow run has ended.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import ClientError

LOCKS_PREFIX = "_ivi/locks/"
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404"}
_CHANGED_OR_GONE = _CONFLICT | _MISSING  # a conditional write or delete that did not apply


class LockTimeout(TimeoutError):
    """The lock stayed held by a live holder for longer than the caller would wait."""


class LeaseLost(RuntimeError):
    """Another run took the lock over: this one must not write anything more."""


def lock_object_key(resource: str) -> str:
    """One lock object per exact resource string: a digest, so that no two resources share
    one (the key is case-sensitive and keeps every character, dots and eTag included)."""
    return f"{LOCKS_PREFIX}{hashlib.sha256(resource.encode('utf-8')).hexdigest()}.json"


@dataclass(frozen=True)
class LockRecord:
    """What the lock object holds; `nonce` makes every write's eTag (an MD5) new."""

    resource: str
    holder: str
    lease_seconds: float
    released: bool
    nonce: str

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> LockRecord | None:
        try:
            fields = json.loads(data)
            return cls(
                resource=str(fields["resource"]),
                holder=str(fields["holder"]),
                lease_seconds=float(fields["lease_seconds"]),
                released=bool(fields["released"]),
                nonce=str(fields["nonce"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as a lock nobody holds


@dataclass(frozen=True)
class TakeOver:
    """An earlier holder's lock that was taken over, and why."""

    holder: str
    reason: str
    lease_ran_out: bool

    def __str__(self) -> str:
        return f"took over the lock of {self.holder}: {self.reason}"


@dataclass(frozen=True)
class Observed:
    """The lock object as read: its record, eTag, and age on the store's clock."""

    record: LockRecord | None
    etag: str
    age_seconds: float

    def free_because(self, holder_has_ended: Callable[[str], str | None]) -> str | None:
        if self.record is None:
            return "its record is unreadable"
        if self.record.released:
            return "it was released"
        if self.age_seconds > self.record.lease_seconds:
            return f"its lease ran out {self.age_seconds - self.record.lease_seconds:.0f} s ago"
        return holder_has_ended(self.record.holder)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class ObjectStoreLease:
    """A lease on `resource`, held as `bucket/<LOCKS_PREFIX><digest>.json`.

    `s3` is a boto3 S3 client (boto3 sends `IfNoneMatch`/`IfMatch` on PutObject).
    """

    def __init__(
        self, s3: Any, bucket: str, resource: str, holder: str, lease_seconds: float = 30.0
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.resource = resource
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.key = lock_object_key(resource)
        self._etag: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()

    # --- taking it ----------------------------------------------------------------------
    def acquire(
        self,
        *,
        timeout: float,
        poll_seconds: float = 1.0,
        holder_has_ended: Callable[[str], str | None] = lambda _holder: None,
    ) -> TakeOver | None:
        """Take the lock, waiting up to `timeout` s; returns the earlier holder whose lock
        was taken over, or None when it was free or released. Raises LockTimeout, or the store's error
        when the store cannot be reached (the caller retries)."""
        deadline = time.monotonic() + timeout
        while True:
            if (etag := self._put(if_none_match=True)) is not None:
                self._etag = etag
                self._start_renewing()
                return None
            observed = self.read()
            if observed is not None and (reason := observed.free_because(holder_has_ended)):
                if (etag := self._put(if_match=observed.etag)) is not None:
                    self._etag = etag
                    self._start_renewing()
                    if observed.record is not None and observed.record.released:
                        return None  # given back: as free as a lock nobody ever took
                    holder = observed.record.holder if observed.record else "?"
                    ran_out = observed.record is not None and not observed.record.released and (
                        observed.age_seconds > observed.record.lease_seconds
                    )
                    return TakeOver(holder, reason, ran_out)
            if time.monotonic() > deadline:
                holder = observed.record.holder if observed and observed.record else "?"
                raise LockTimeout(
                    f"the lock on {self.resource} is still held by {holder} after {timeout:.0f} s"
                )
            time.sleep(poll_seconds)

    def read(self) -> Observed | None:
        """The lock object now, or None when there is none."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            if _error_code(error) in _MISSING:
                return None
            raise
        with response["Body"] as body:
            data = body.read()
        server_now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (server_now - response["LastModified"]).total_seconds()
        return Observed(LockRecord.decode(data), str(response["ETag"]), age)

    # --- keeping it ---------------------------------------------------------------------
    def check(self) -> None:
        """Raise LeaseLost when another run has taken the lock over since it was taken."""
        if self._lost is not None:
            raise LeaseLost(f"lost the lock on {self.resource}: {self._lost}")
        if self._etag is None:
            raise LeaseLost(f"the lock on {self.resource} is not held")

    def renew(self) -> None:
        """Rewrite the record (a fresh Last-Modified); a 412 means it was taken over."""
        with self._guard:
            if self._etag is None or self._lost is not None:
                return
            etag = self._put(if_match=self._etag)
            if etag is None:
                self._lost = "another run took it over (the lease ran out unrenewed)"
            else:
                self._etag = etag

    def _start_renewing(self) -> None:
        def renew_until_released() -> None:
            while not self._stop.wait(self.lease_seconds / 3):
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - the store unreachable: try again next beat
                    continue

        self._renewer = threading.Thread(target=renew_until_released, name="lease-renewer", daemon=True)
        self._renewer.start()

    # --- giving it back -----------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and mark the record released (only while it is still ours)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._guard:
            if self._etag is not None and self._lost is None:
                self._put(if_match=self._etag, released=True)
            self._etag = None

    # --- the one write ------------------------------------------------------------------
    def _put(
        self, *, if_none_match: bool = False, if_match: str | None = None, released: bool = False
    ) -> str | None:
        """One conditional write of this holder's record: its new eTag, or None when the
        condition failed (the object exists, changed, or is gone)."""
        record = LockRecord(self.resource, self.holder, self.lease_seconds, released, secrets.token_hex(8))
        conditions: dict[str, str] = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": str(if_match)}
        try:
            response = self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=record.encode(),
                ContentType="application/json", **conditions,
            )
        except ClientError as error:
            if _error_code(error) in _CHANGED_OR_GONE:
                return None
            raise
        return str(response["ETag"])


@dataclass(frozen=True)
class Swept:
    deleted: int
    kept: int  # younger than the cut-off, or rewritten between the listing and the delete


def sweep_lock_records(s3: Any, bucket: str, *, older_than_seconds: float) -> Swept:
    """Delete the lock records nobody has written for `older_than_seconds` (on the store's
    clock): released, or left by a holder that died. Without it every object version ever
    processed keeps its record for good. The cut-off must be far longer than any lease: a
    held lock is rewritten every third of its lease, so it is never that old."""
    deleted = kept = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=LOCKS_PREFIX):
        server_now = parsedate_to_datetime(page["ResponseMetadata"]["HTTPHeaders"]["date"])
        for listed in page.get("Contents", []):
            if (server_now - listed["LastModified"]).total_seconds() > older_than_seconds and (
                delete_if_unchanged(s3, bucket, listed["Key"], listed["ETag"])
            ):
                deleted += 1
            else:
                kept += 1
    return Swept(deleted, kept)


def delete_if_unchanged(s3: Any, bucket: str, key: str, etag: str) -> bool:
    """Delete `key` if it still has `etag`; False when it was rewritten (a run took the lock
    since it was listed) or is gone already."""
    try:
        s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except ClientError as error:
        if _error_code(error) in _CHANGED_OR_GONE:
            return False
        raise
    return True
