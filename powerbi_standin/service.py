"""The routes Power BI itself has: push URL rows, REST rows, create dataset, and Entra ID tokens.

- `POST /beta/{tenant}/datasets/{id}/rows?key=...`: a push URL, body a JSON array of rows;
- `POST /v1.0/myorg/groups/{group}/datasets/{id}/tables/{table}/rows`: `{"rows": [...]}`
  with `Authorization: Bearer <token>`;
- `POST /v1.0/myorg/groups/{group}/datasets`: create a push dataset (`{"name", "defaultMode",
  "tables"}`); answers 201 with `id` and, a stand-in extension, `pushKey` and `pushUrl`;
- `POST /{tenant}/oauth2/v2.0/token` and its OpenID discovery document.

Every rows request goes through `accept_rows`, which applies the checks in the order the
service's answers imply: pending requests, queued faults, the POST rate (per minute, and per
hour once the table holds 250,000 rows), the body size, the JSON, the row count, the hourly
rows, each row's columns and types, then the table's row cap (5,000,000 rows without a
retention policy; a `basicFIFO` table keeps its latest 200,000 rows instead).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from powerbi_standin.faults import Fault
from powerbi_standin.httpio import (
    ADMIN_BODY_BYTES,
    DropConnection,
    drained,
    error_response,
    read_admin_json,
    read_body,
    throttled,
)
from powerbi_standin.state import StandIn
from powerbi_standin.store import Dataset, Table
from powerbi_standin.tokens import TokenError, openid_configuration
from powerbi_standin.validation import (
    Rejected,
    check_rows,
    parse_dataset_definition,
    parse_json,
    parse_retention,
)


#: The code of the refusal at the per-table cap. Microsoft documents the cap, not the answer;
#: the stand-in answers in the service's error shape with this code (docs/powerbi.md).
TABLE_FULL_CODE = "RowLimitExceeded"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_bearer(state: StandIn, request: Request) -> JSONResponse | None:
    """None when the request carries a valid token; the service's 401 otherwise."""
    token = bearer_token(request)
    if token is None:
        return error_response(
            401,
            "Unauthorized",
            "an Authorization: Bearer token is required",
            {"WWW-Authenticate": "Bearer"},
        )
    if not state.issuer.valid(token):
        return error_response(
            401,
            "TokenExpired",
            "the access token is expired or unknown",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


async def accept_rows(
    state: StandIn,
    request: Request,
    dataset: Dataset,
    table: Table,
    extract: Callable[[Any], Any],
) -> Response:
    """Everything after authentication, each request logged with its answer (`close` for
    a dropped connection) in the dataset's traffic."""
    requests = state.traffic_of(dataset.id).requests
    received_at = time.time()
    try:
        response = await _accept_rows(state, request, dataset, table, extract)
    except DropConnection:
        requests.append((received_at, "close"))
        raise
    requests.append((received_at, str(response.status_code)))
    return response


async def _accept_rows(
    state: StandIn,
    request: Request,
    dataset: Dataset,
    table: Table,
    extract: Callable[[Any], Any],
) -> Response:
    """Faults, limits, body, types, then the store."""
    limits = state.limits_of(dataset)
    traffic = state.traffic_of(dataset.id)
    if traffic.pending >= limits.pending_requests:
        return throttled(
            "TooManyPendingRequests",
            f"more than {limits.pending_requests} requests pending for this dataset",
            1,
        )
    traffic.pending += 1
    try:
        fault = state.faults.take(dataset.id)
        if fault is not None:
            response = await apply_fault(fault)
            if response is not None:
                return response
        wait = traffic.posts.wait_for(1, limits.posts_per_minute)
        if wait > 0:
            return throttled(
                "TooManyRequests",
                f"more than {limits.posts_per_minute} POST requests per minute to this dataset",
                wait,
            )
        stored = state.store.table_row_count(dataset.id, table.name)
        if not dataset.streaming_only and stored >= limits.large_table_rows:
            wait = traffic.posts_hour.wait_for(1, limits.posts_per_hour_large_table)
            if wait > 0:
                return throttled(
                    "TooManyRequests",
                    f"table {table.name!r} holds {stored:,} rows ({limits.large_table_rows:,} "
                    f"or more): at most {limits.posts_per_hour_large_table} POST rows requests "
                    "per hour to this dataset",
                    wait,
                )
        traffic.posts.add(1)
        traffic.posts_hour.add(1)
        body_limit = limits.streaming_body_bytes if dataset.streaming_only else limits.body_bytes
        rows = check_rows(extract(parse_json(await read_body(request, body_limit))), table, limits)
        wait = traffic.rows.wait_for(len(rows), limits.rows_per_hour)
        if wait > 0:
            return throttled(
                "TooManyRowsPerHour",
                f"more than {limits.rows_per_hour} rows per hour to this dataset",
                wait,
            )
        keep = table_cap(state, dataset, table, len(rows))
        state.store.append_rows(dataset.id, table.name, rows, keep_at_most=keep)
        traffic.rows.add(len(rows))
        return Response(status_code=200)
    except Rejected as rejected:
        return error_response(rejected.status, rejected.code, rejected.message)
    finally:
        traffic.pending -= 1


def table_cap(state: StandIn, dataset: Dataset, table: Table, adding: int) -> int | None:
    """How many rows the table may keep after `adding` more: the FIFO window for a
    `basicFIFO` dataset, None otherwise; raises `Rejected` when a dataset without a retention
    policy would go past its per-table cap (the POST is refused whole, as the service
    accepts a POST whole or not at all).

    Checked and stored with no `await` in between, so that concurrent requests of one
    dataset cannot both slip under the cap.
    """
    if dataset.streaming_only:
        return None  # a streaming dataset stores no table
    limits = state.limits_of(dataset)
    if dataset.fifo:
        return limits.fifo_rows_per_table
    stored = state.store.table_row_count(dataset.id, table.name)
    if stored + adding > limits.rows_per_table:
        raise Rejected(
            f"table {table.name!r} holds {stored:,} rows and a dataset without a retention "
            f"policy stores at most {limits.rows_per_table:,} rows per table: this POST of "
            f"{adding:,} rows is refused. Create the dataset with "
            "defaultRetentionPolicy=basicFIFO (keeps the latest rows) or push to a new table",
            code=TABLE_FULL_CODE,
        )
    return None


async def apply_fault(fault: Fault) -> Response | None:
    """The answer a queued fault gives, or None when the request then proceeds (delay)."""
    if fault.kind == "429":
        return throttled("TooManyRequests", "throttled (injected fault)", fault.retry_after)
    if fault.kind == "500":
        return error_response(500, "InternalServerError", "internal error (injected fault)")
    if fault.kind == "close":
        raise DropConnection()
    await asyncio.sleep(fault.seconds)
    return None


def rows_of_push_body(body: Any) -> Any:
    return body


def rows_of_rest_body(body: Any) -> Any:
    if not isinstance(body, dict) or "rows" not in body:
        raise Rejected('the body must be a JSON object {"rows": [...]}')
    return body["rows"]


def new_push_key() -> str:
    return secrets.token_urlsafe(24)


def add_service_routes(app: FastAPI, state: StandIn) -> None:
    @app.post("/beta/{tenant}/datasets/{dataset_id}/rows")
    async def push_url_rows(
        tenant: str, dataset_id: str, request: Request, key: str | None = None
    ) -> Response:
        answer: Response
        dataset = state.store.dataset(dataset_id)
        if dataset is None:
            answer = error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        elif key is None or not secrets.compare_digest(key, dataset.push_key):
            answer = error_response(403, "Forbidden", "the push key is missing or wrong")
        else:
            answer = await accept_rows(
                state, request, dataset, dataset.tables[0], rows_of_push_body
            )
        return await drained(request, answer)

    @app.post("/v1.0/myorg/groups/{group}/datasets/{dataset_id}/tables/{table}/rows")
    async def rest_rows(group: str, dataset_id: str, table: str, request: Request) -> Response:
        return await drained(request, await rest_rows_answer(group, dataset_id, table, request))

    async def rest_rows_answer(
        group: str, dataset_id: str, table: str, request: Request
    ) -> Response:
        denied = check_bearer(state, request)
        if denied is not None:
            return denied
        dataset = state.store.dataset(dataset_id)
        if dataset is None:
            return error_response(404, "ItemNotFound", f"dataset {dataset_id} does not exist")
        if dataset.group_id != group:
            return error_response(
                403, "Forbidden", f"dataset {dataset_id} is not in workspace {group}"
            )
        found = dataset.table(table)
        if found is None:
            return error_response(404, "ItemNotFound", f"table {table!r} does not exist")
        return await accept_rows(state, request, dataset, found, rows_of_rest_body)

    @app.post("/v1.0/myorg/groups/{group}/datasets")
    async def create_dataset(group: str, request: Request) -> Response:
        denied = check_bearer(state, request)
        if denied is not None:
            return await drained(request, denied)
        try:
            retention = parse_retention(request.query_params.get("defaultRetentionPolicy"))
            name, mode, tables = parse_dataset_definition(
                await read_admin_json(request), state.limits
            )
        except Rejected as rejected:
            return await drained(
                request, error_response(rejected.status, rejected.code, rejected.message)
            )
        dataset = Dataset(
            str(uuid.uuid4()), name, group, new_push_key(), mode, tables, retention=retention
        )
        state.store.put_dataset(dataset)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "id": dataset.id,
                "name": dataset.name,
                "defaultRetentionPolicy": dataset.retention,
                "pushKey": dataset.push_key,
                "pushUrl": f"{base}/beta/{group}/datasets/{dataset.id}/rows?key={dataset.push_key}",
            },
            status_code=201,
        )

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def openid(tenant: str, request: Request) -> Response:
        return JSONResponse(openid_configuration(f"https://{request.url.netloc}", tenant))

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        try:
            body = await read_body(request, ADMIN_BODY_BYTES)
            form = dict(parse_qsl(body.decode("utf-8", errors="replace")))
            return JSONResponse(state.issuer.issue(tenant, form))
        except TokenError as error:
            return JSONResponse(
                {"error": error.error, "error_description": error.description}, error.status
            )
        except Rejected as rejected:
            return JSONResponse(
                {"error": "invalid_request", "error_description": rejected.message},
                rejected.status,
            )
