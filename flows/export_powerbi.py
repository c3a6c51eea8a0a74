"""export-powerbi: the clean rows of one object version to its contract's Power BI dataset.

Exactly once per object version: the rows are cut into deterministic batches, and each batch
is a task whose result is persisted and cached by (destination, bucket, key, eTag, batch
number, content).
A run retried after a crash, or a second delivery of the event, finds the accepted batches in
the cache and posts only the rest. All runs share one rate limit per dataset (a Prefect global
concurrency limit that `ivi up` creates, used with `strict=True` so that a missing limit fails
loudly instead of silently not throttling).

Two ends are not failures of the run. Throttled for longer than a minute (the hourly caps),
the push stops and says `deferred`: the accepted batches are cached, and the powerbi-catch-up
deployment (`flows/powerbi_catch_up.py`) pushes the rest later through this same code, so the
cache still keeps every batch to once. A table at its row cap says `table_full`, with where
the rows are and what to do, and is not retried.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import requests
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import rate_limit
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext
from prefect.exceptions import ObjectNotFound
from prefect.transactions import CommitMode, transaction

from flows.retries import retry_when
from objectstore.output_names import fit
from blocks.loaded_once import load_block
from blocks.powerbi import PowerBIPushDataset, PowerBIStreamingDataset, block_name
from powerbi.push import (
    DEFERRED,
    TABLE_FULL,
    Batch,
    Destination,
    PostStats,
    PowerBITableFull,
    PowerBIThrottled,
    PowerBIUnavailable,
    PushSummary,
    post_batch,
    rows_to_json_batches,
)
from processing.clean import polars_type
from processing.contract import Contract

READ_ROWS = 50_000  # the clean CSV is read back in frames of this many rows
# The global concurrency limit `ivi up` creates per dataset (deployments/apply.py). Power BI
# takes at most 120 POSTs per minute per dataset (any 60 s span). Slots decay at 1.95/s, so
# with two slots at most 2 + 60 * 1.95 = 119 POSTs fit in any 60 s. Two slots rather than
# one: with one, a run that found the slot taken waited out Prefect's Retry-After (~2.2 s,
# measured) before its single POST, which made uploads' latency jump; a bucket of 120 would
# let a burst of 120 followed by a steady 2/s put up to 240 POSTs in one window.
RATE_LIMIT_SLOTS = 2
RATE_LIMIT_SLOT_DECAY_PER_SECOND = 1.95
# Ask for the next slot only once the last one has decayed (plus a margin for clocks):
# Prefect restarts a limit's decay clock on every denied request and answers with a
# Retry-After of a second or more, so asking early costs more than waiting.
SLOT_SECONDS = 1 / RATE_LIMIT_SLOT_DECAY_PER_SECOND + 0.02
_last_slot_at: dict[str, float] = {}  # limit name -> monotonic time of this process' last slot
_limits_seen: set[str] = set()  # rate limits this process found on the server (they stay)
SETUP_HINT = "`ivi contract publish` or the setup step creates it"
# POSTs and 429s of the push-batch runs of one export, by a tally id the export makes up:
# the task's return value is its cached result, so it cannot say what this run sent.
_tallies: dict[str, PostStats] = {}


def rate_limit_name(contract: str) -> str:
    """One limit per dataset, named as the dataset's block (a dataset serves one contract)."""
    return block_name(contract)


def load_destination(contract: str) -> Destination | None:
    """The contract's Power BI block, or None when it has no Power BI destination."""
    for block_class in (PowerBIStreamingDataset, PowerBIPushDataset):
        try:
            return load_block(block_class, block_name(contract))  # type: ignore[no-any-return]
        except ValueError:
            continue
    return None


def missing_rate_limit(limit: str) -> bool:
    """True when the server has no global concurrency limit `limit` (asked once per process
    and limit while it exists: `rate_limit(strict=True)` would otherwise fail every batch)."""
    if limit in _limits_seen:
        return False
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            return True
    _limits_seen.add(limit)
    return False


def skipped_reason(contract: Contract, destination: Destination | None) -> str | None:
    """Why this contract's rows cannot be pushed now, or None when they can.

    A contract published without going through `ivi contract publish` (or a Power BI block
    deleted by hand) has no destination or no rate limit yet: its runs are processed and
    stored, and the report says why nothing was pushed and what creates it.
    """
    if contract.powerbi_table is None:
        return f"contract `{contract.name}` has no [powerbi] table"
    if destination is None:
        return f"no Power BI block `{block_name(contract.name)}` ({SETUP_HINT})"
    if missing_rate_limit(rate_limit_name(contract.name)):
        return f"no rate limit `{rate_limit_name(contract.name)}` on the Prefect server ({SETUP_HINT})"
    return None


def powerbi_columns(contract: Contract, present: list[str]) -> list[tuple[str, str]]:
    return [(spec.name, spec.powerbi_type) for spec in contract.columns if spec.name in present]


def clean_frames(clean_csv: Path, contract: Contract, present: list[str]) -> Any:
    """The clean CSV read back typed, a frame at a time (memory stays bounded)."""
    schema = {spec.name: polars_type(spec) for spec in contract.columns if spec.name in present}
    return pl.scan_csv(clean_csv, schema=schema).collect_batches(chunk_size=READ_ROWS)


# What the batch cache key adds around the version: `_ivi/results/powerbi-batch/<16>/`, then
# `/<batch number>/<64-hex digest>`, with room to spare for a longer results folder.
CACHE_KEY_ROOM_BYTES = 200


def _batch_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """(destination, object version, batch number, content): a batch accepted by one dataset
    is not taken as accepted by another when the contract's block is pointed elsewhere (the
    destination enters as a digest of its secret-free description, never with its key)."""
    batch: Batch = parameters["batch"]
    destination: Destination = parameters["destination"]
    where = hashlib.sha256(destination.describe().encode()).hexdigest()[:16]
    version = fit(parameters["version"], parameters["version"], prefix_bytes=CACHE_KEY_ROOM_BYTES)
    return f"powerbi-batch/{where}/{version}/{batch.number}/{batch.digest}"


# What a later attempt can get past: Power BI unavailable, or the Prefect server too busy to
# hand out a rate-limit slot (its 503, seen under a burst of uploads); 400/403 and bugs are final.
_retry_when_unavailable = retry_when((PowerBIUnavailable, ConcurrencySlotAcquisitionError))


def _wait_for_slot_decay(limit: str) -> None:
    """Sleep until this process' previous slot of `limit` has decayed on the server."""
    last = _last_slot_at.get(limit)
    if last is not None and (wait := last + SLOT_SECONDS - time.monotonic()) > 0:
        time.sleep(wait)


@task(
    name="push-batch",
    cache_key_fn=_batch_cache_key,
    persist_result=True,
    retries=3,
    retry_delay_seconds=[5, 15, 30],
    retry_condition_fn=_retry_when_unavailable,
)
def push_batch(
    destination: Destination, batch: Batch, version: str, limit: str, tally: str = ""
) -> int:
    """POST one batch (its result, the row count, marks it accepted for good); its POSTs and
    429s are counted in `_tallies[tally]` (not in the cache key)."""

    def take_slot() -> None:  # every POST, retries included, takes a slot of the limit
        _wait_for_slot_decay(limit)
        rate_limit(limit, occupy=1, strict=True)
        _last_slot_at[limit] = time.monotonic()

    with requests.Session() as session:
        post_batch(
            destination, batch, session, before_each_post=take_slot,
            stats=_tallies.setdefault(tally, PostStats()) if tally else PostStats(),
        )
    return batch.row_count


@task(name="export-powerbi", cache_policy=NO_CACHE)
def export_powerbi(
    clean_csv: Path, contract: Contract, present: list[str], version: str, rows_at: str = ""
) -> PushSummary:
    """Push every clean row once; batches already accepted for this version are skipped.
    `rows_at` says where the clean rows are kept (for a report that cannot push them)."""
    destination = load_destination(contract.name) if contract.powerbi_table else None
    reason = skipped_reason(contract, destination)
    if reason is not None or destination is None:
        return PushSummary(destination=None, skipped_reason=reason)
    return push_clean_rows(destination, clean_csv, contract, present, version, rows_at)


def push_clean_rows(
    destination: Destination,
    clean_csv: Path,
    contract: Contract,
    present: list[str],
    version: str,
    rows_at: str = "",
) -> PushSummary:
    """Each batch of the clean CSV as a cached `push-batch` task, in order, until all are
    accepted, or the service defers the push (`deferred`) or refuses it for a full table
    (`table_full`). Shared by the export and the catch-up: the same rows give the same
    batches and cache keys, so a batch accepted by either is never posted again."""
    export = PushSummary(destination=destination.describe())
    batches = rows_to_json_batches(
        clean_frames(clean_csv, contract, present),
        powerbi_columns(contract, present),
        max_bytes=destination.max_batch_bytes(),
    )
    limit = rate_limit_name(contract.name)
    tally = uuid.uuid4().hex
    try:
        for batch in batches:
            try:
                # EAGER: a batch's cache record is written the moment the batch is accepted.
                # Inside this task's transaction a task's own transaction would inherit LAZY
                # and be committed only when export-powerbi ends, so a run killed half way
                # would have cached nothing and would push its accepted batches a second time.
                with transaction(commit_mode=CommitMode.EAGER):
                    push_batch(destination, batch, version, limit, tally)
            except PowerBIThrottled as throttled:
                return _deferred(export, batch, throttled)
            except PowerBITableFull as full:
                return _table_full(export, contract, batch, full, rows_at)
            export.add(batch)
        return export
    finally:
        export.count_requests(_tallies.pop(tally, PostStats()))


def _deferred(export: PushSummary, batch: Batch, throttled: PowerBIThrottled) -> PushSummary:
    retry_at = datetime.now(UTC) + timedelta(seconds=throttled.retry_after)
    export.status = DEFERRED
    export.retry_at = retry_at.isoformat(timespec="seconds")
    export.message = (
        f"Power BI asked to wait {throttled.retry_after:.0f} s before batch {batch.number} "
        f"(row {batch.first_row} on): the {export.rows} rows of batches accepted so far are "
        f"in, and the powerbi-catch-up deployment pushes the rest after {export.retry_at}. "
        "The clean CSV and JSON are written."
    )
    return export


def _table_full(
    export: PushSummary, contract: Contract, batch: Batch, full: PowerBITableFull, rows_at: str
) -> PushSummary:
    export.status = TABLE_FULL
    where = f" in the clean CSV {rows_at} (and the JSON beside it)" if rows_at else " in the clean CSV and JSON"
    export.message = (
        f"The Power BI table is full: it refused batch {batch.number} (row {batch.first_row} "
        f"on) because a push dataset without a retention policy stores at most 5,000,000 rows "
        f"per table, and it will not be retried. No row is lost: every clean row is{where}. "
        f"To keep pushing, create a dataset that keeps the latest 200,000 rows (`ivi powerbi "
        f"create-dataset --contract {contract.name} --retention basicFIFO`) or point the "
        f"contract at a new table, then process the file again (force). Service: {full}"
    )
    return export
