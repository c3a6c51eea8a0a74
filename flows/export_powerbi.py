"""export-powerbi: the clean rows of one object version to its contract's Power BI dataset.

Exactly once per object version: the rows are cut into deterministic batches, and each batch
is a task whose result is persisted and cached by (bucket, key, eTag, batch number, content).
A run retried after a crash, or a second delivery of the event, finds the accepted batches in
the cache and posts only the rest. All runs share one rate limit per dataset (a Prefect global
concurrency limit that `ivi up` creates, used with `strict=True` so that a missing limit fails
loudly instead of silently not throttling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import requests
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import rate_limit
from prefect.context import TaskRunContext
from prefect.states import State

from blocks.powerbi import PowerBIPushDataset, PowerBIStreamingDataset, block_name
from flows.powerbi_push import Batch, Destination, PowerBIUnavailable, post_batch, rows_to_json_batches
from processing.clean import POLARS_TYPES
from processing.contract import Contract

READ_ROWS = 50_000  # the clean CSV is read back in frames of this many rows


def rate_limit_name(contract: str) -> str:
    """One limit per dataset; a dataset serves one contract."""
    return f"powerbi-{contract}"


def load_destination(contract: str) -> Destination | None:
    """The contract's Power BI block, or None when it has no Power BI destination."""
    for block_class in (PowerBIStreamingDataset, PowerBIPushDataset):
        try:
            return block_class.load(block_name(contract))  # type: ignore[no-any-return]
        except ValueError:
            continue
    return None


def powerbi_columns(contract: Contract, present: list[str]) -> list[tuple[str, str]]:
    return [(spec.name, spec.powerbi_type) for spec in contract.columns if spec.name in present]


def clean_frames(clean_csv: Path, contract: Contract, present: list[str]) -> Any:
    """The clean CSV read back typed, a frame at a time (memory stays bounded)."""
    schema = {spec.name: POLARS_TYPES[spec.type] for spec in contract.columns if spec.name in present}
    return pl.scan_csv(clean_csv, schema=schema).collect_batches(chunk_size=READ_ROWS)


def _batch_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    batch: Batch = parameters["batch"]
    return f"powerbi-batch/{parameters['version']}/{batch.number}/{batch.digest}"


def _retry_when_unavailable(task: Any, task_run: Any, state: State) -> bool:
    try:
        state.result()
    except PowerBIUnavailable:
        return True
    except Exception:  # noqa: BLE001 - 400/403 and bugs are final
        return False
    return False


@task(
    name="push-batch",
    cache_key_fn=_batch_cache_key,
    persist_result=True,
    retries=3,
    retry_delay_seconds=[5, 15, 30],
    retry_condition_fn=_retry_when_unavailable,
)
def push_batch(destination: Destination, batch: Batch, version: str, limit: str) -> int:
    """POST one batch (its result, the row count, marks it accepted for good)."""
    rate_limit(limit, occupy=1, strict=True)
    with requests.Session() as session:
        post_batch(destination, batch, session)
    return batch.row_count


@dataclass
class PowerBIExport:
    destination: str | None
    rows: int = 0
    batches: int = 0
    strings_cut: int = 0
    skipped_reason: str | None = None

    def as_report(self) -> dict[str, object]:
        return {
            "powerbi_destination": self.destination,
            "powerbi_rows": self.rows,
            "powerbi_batches": self.batches,
            "powerbi_strings_cut": self.strings_cut,
            **({"powerbi_skipped": self.skipped_reason} if self.skipped_reason else {}),
        }


@task(name="export-powerbi", cache_policy=NO_CACHE)
def export_powerbi(clean_csv: Path, contract: Contract, present: list[str], version: str) -> PowerBIExport:
    """Push every clean row once; batches already accepted for this version are skipped."""
    destination = load_destination(contract.name)
    if destination is None or contract.powerbi_table is None:
        return PowerBIExport(destination=None, skipped_reason=f"no Power BI destination for `{contract.name}`")
    export = PowerBIExport(destination=destination.describe())
    batches = rows_to_json_batches(
        clean_frames(clean_csv, contract, present),
        powerbi_columns(contract, present),
        max_bytes=destination.max_batch_bytes(),
    )
    limit = rate_limit_name(contract.name)
    for batch in batches:
        export.rows += push_batch(destination, batch, version, limit)
        export.batches += 1
        export.strings_cut += batch.strings_cut
    return export
