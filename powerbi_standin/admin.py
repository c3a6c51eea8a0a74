"""Routes for tests and the demo, not part of the service: `/_standin/...` and the page at `/`.

With an admin token configured they all require it (`adminauth.py`), `/_standin/healthz`
excepted.

Datasets with their counts and latest rows, the accepted POSTs' times, every rows request
with its answer, registering a dataset with a known id, key, limits and retention policy,
deleting rows, seeding a table with a number of rows (to reach the per-table caps quickly),
moving the stand-in's clock forward (to see an hourly window pass), queueing faults, revoking
tokens.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from powerbi_standin.adminauth import HEALTH_PATH
from powerbi_standin.faults import parse_fault
from powerbi_standin.httpio import error_response, read_admin_json
from powerbi_standin.limits import Limits
from powerbi_standin.page import render_page
from powerbi_standin.service import new_push_key, table_cap
from powerbi_standin.state import StandIn
from powerbi_standin.store import Dataset
from powerbi_standin.validation import (
    DEFAULT_MODES,
    Rejected,
    parse_dataset_definition,
    parse_retention,
    parse_table,
)

PAGE_LATEST_ROWS = 5
DEFAULT_GROUP = "standin"
MAX_CLOCK_STEP_SECONDS = 7 * 86_400.0


def register_body(body: Any, limits: Limits) -> Dataset:
    """A dataset from a `POST /_standin/datasets` body (tests: known id, key and limits)."""
    if not isinstance(body, dict):
        raise Rejected("the body must be a JSON object")
    dataset_id = body.get("id") or str(uuid.uuid4())
    key = body.get("key") or new_push_key()
    if not isinstance(dataset_id, str) or not isinstance(key, str):
        raise Rejected("id and key must be strings")
    mode_value = body.get("defaultMode") or ("Streaming" if body.get("streaming_only") else "Push")
    mode = DEFAULT_MODES.get(str(mode_value).lower())
    if mode is None:
        raise Rejected(f"defaultMode {mode_value!r} is not one of {sorted(DEFAULT_MODES.values())}")
    if "tables" in body:
        _, _, tables = parse_dataset_definition(
            {"name": body.get("name", dataset_id), "tables": body["tables"]}, limits
        )
    else:
        tables = (
            parse_table(
                {"name": body.get("table", "RealTimeData"), "columns": body.get("columns")}, limits
            ),
        )
    overrides = body.get("limits") or {}
    if not isinstance(overrides, dict):
        raise Rejected("limits must be an object")
    try:
        limits.with_overrides(overrides)
    except ValueError as error:
        raise Rejected(str(error)) from None
    return Dataset(
        id=dataset_id,
        name=str(body.get("name") or dataset_id),
        group_id=str(body.get("group") or DEFAULT_GROUP),
        push_key=key,
        default_mode=mode,
        tables=tables,
        limit_overrides=dict(overrides),
        retention=parse_retention(body.get("defaultRetentionPolicy")),
    )


def seed_count(body: Any) -> int:
    """The `rows` of a `POST .../seed` body: a positive integer."""
    count = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000_000:
        raise Rejected('the body must be {"rows": N}, N an integer from 1 to 100000000')
    return count


def clock_step(body: Any) -> float:
    """The `advance_seconds` of a `POST /_standin/clock` body."""
    seconds = body.get("advance_seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise Rejected('the body must be {"advance_seconds": S}')
    if not 0 < seconds <= MAX_CLOCK_STEP_SECONDS:
        raise Rejected(f"advance_seconds must be above 0 and at most {MAX_CLOCK_STEP_SECONDS:g}")
    return float(seconds)


def add_admin_routes(app: FastAPI, state: StandIn) -> None:
    def summary(dataset: Dataset) -> dict[str, Any]:
        traffic = state.traffic_of(dataset.id)
        return {
            **dataset.public(),
            "rows": state.store.row_count(dataset.id),
            "pending": traffic.pending,
            "posts_last_minute": traffic.posts.total(),
            "posts_last_hour": traffic.posts_hour.total(),
            "rows_last_hour": traffic.rows.total(),
            "table_rows": {
                table.name: state.store.table_row_count(dataset.id, table.name)
                for table in dataset.tables
            },
        }

    @app.get(HEALTH_PATH)
    async def healthz() -> Response:
        """Open to all: says only that the stand-in answers (for health checks)."""
        return JSONResponse({"ok": True})

    @app.get("/_standin/datasets")
    async def list_datasets() -> Response:
        return JSONResponse({"datasets": [summary(d) for d in state.store.datasets()]})

    @app.post("/_standin/datasets")
    async def register_dataset(request: Request) -> Response:
        try:
            dataset = register_body(await read_admin_json(request), state.limits)
        except Rejected as rejected:
            return error_response(rejected.status, rejected.code, rejected.message)
        state.store.put_dataset(dataset)
        state.traffic.pop(dataset.id, None)
        return JSONResponse(
            {"id": dataset.id, "key": dataset.push_key, "name": dataset.name}, status_code=201
        )

    @app.get("/_standin/datasets/{dataset_id}")
    async def get_dataset(dataset_id: str) -> Response:
        dataset = state.store.dataset(dataset_id)
        if dataset is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        return JSONResponse(summary(dataset))

    @app.get("/_standin/datasets/{dataset_id}/rows")
    async def get_rows(dataset_id: str, limit: int = 100) -> Response:
        if state.store.dataset(dataset_id) is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        latest = state.store.latest_rows(dataset_id, max(0, min(limit, 2_000_000)))
        return JSONResponse(
            {
                "dataset_id": dataset_id,
                "count": state.store.row_count(dataset_id),
                "rows": [entry["row"] for entry in reversed(latest)],
            }
        )

    @app.get("/_standin/datasets/{dataset_id}/posts")
    async def get_posts(dataset_id: str) -> Response:
        if state.store.dataset(dataset_id) is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        return JSONResponse({"dataset_id": dataset_id, "posts": state.store.posts(dataset_id)})

    @app.get("/_standin/datasets/{dataset_id}/requests")
    async def get_requests(dataset_id: str) -> Response:
        """Every rows request since the stand-in started (or the dataset's rows were
        deleted), refused ones included, with its answer: a status code or `close`."""
        if state.store.dataset(dataset_id) is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        traffic = state.traffic_of(dataset_id)
        return JSONResponse(
            {
                "dataset_id": dataset_id,
                "requests": [{"received_at": at, "answer": answer} for at, answer in traffic.requests],
            }
        )

    @app.delete("/_standin/datasets/{dataset_id}/rows")
    async def delete_rows(dataset_id: str) -> Response:
        state.traffic.pop(dataset_id, None)
        return JSONResponse({"deleted": state.store.delete_rows(dataset_id)})

    @app.post("/_standin/datasets/{dataset_id}/tables/{table_name}/seed")
    async def seed_table(dataset_id: str, table_name: str, request: Request) -> Response:
        """Add N placeholder rows to a table: counted by the caps, never listed. A table
        without a retention policy is not seeded past its cap; a basicFIFO one keeps its
        window."""
        dataset = state.store.dataset(dataset_id)
        if dataset is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        table = dataset.table(table_name)
        if table is None:
            return error_response(404, "ItemNotFound", f"table {table_name!r} does not exist")
        try:
            count = seed_count(await read_admin_json(request))
            keep = table_cap(state, dataset, table, count)
        except Rejected as rejected:
            return error_response(rejected.status, rejected.code, rejected.message)
        state.store.seed_rows(dataset.id, table.name, count, keep_at_most=keep)
        return JSONResponse(
            {"table": table.name, "rows": state.store.table_row_count(dataset.id, table.name)},
            status_code=201,
        )

    @app.post("/_standin/clock")
    async def advance_clock(request: Request) -> Response:
        """Move the clock of the rate windows and faults forward (an hour passes at once)."""
        try:
            seconds = clock_step(await read_admin_json(request))
        except Rejected as rejected:
            return error_response(rejected.status, rejected.code, rejected.message)
        return JSONResponse({"offset_seconds": state.clock.advance(seconds)})

    @app.post("/_standin/faults")
    async def queue_fault(request: Request) -> Response:
        try:
            dataset_id, fault = parse_fault(await read_admin_json(request))
        except (Rejected, ValueError) as error:
            return error_response(400, "InvalidRequest", str(error))
        state.faults.add(dataset_id, fault)
        return JSONResponse({"queued": state.faults.pending()}, status_code=201)

    @app.delete("/_standin/faults")
    async def clear_faults() -> Response:
        state.faults.clear()
        return JSONResponse({"queued": []})

    @app.delete("/_standin/tokens")
    async def revoke_tokens() -> Response:
        return JSONResponse({"revoked": state.issuer.revoke_all()})

    @app.get("/", response_class=HTMLResponse)
    async def page() -> Response:
        datasets = state.store.datasets()
        return HTMLResponse(
            render_page(
                [
                    (
                        d,
                        state.store.row_count(d.id),
                        state.store.latest_rows(d.id, PAGE_LATEST_ROWS),
                    )
                    for d in datasets
                ]
            )
        )
