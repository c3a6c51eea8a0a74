"""The relay: an object store's webhook in, one Prefect event per new raw CSV out.

Prefect OSS has no inbound webhooks, but its server takes events (`POST /api/events`), and a
deployment trigger turns `minio.object.created` into a `process_object` run. This app sits in
between; it imports nothing of the pipeline and talks to Prefect over plain HTTP.

Answers, chosen for MinIO's delivery semantics (with `queue_dir` it retries the oldest
undelivered event every 3 s, forever, on any non-2xx answer, blocking everything behind it):

- 401: no or wrong bearer token (checked before the body is read, in constant time).
- 413: body larger than `IVI_RELAY_MAX_BODY_BYTES` (counted while reading the stream; a
  declared Content-Length beyond what would be drained is refused before reading).
- 400: a body that is not a JSON object (or is JSON no store writes: NaN, lone surrogate
  escapes, nesting or numbers beyond what Python reads). Neither MinIO nor SeaweedFS ever
  sends one, so it can only come from a misconfigured sender, which should hear about it.
- 200: everything well-formed, whether it started runs or was ignored (deletes, folders,
  multipart parts, other buckets, other suffixes, liveness pings, unknown shapes).
- 503: Prefect's API unreachable, timing out, or answering 5xx, 429, 401 or 403: a transient
  failure (or a misconfiguration to fix) the store should retry. Any other Prefect answer is logged and the event dropped (retrying a
  request Prefect refuses would only block the store's queue; the reconcile schedule
  catches the object up).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from relay.dispatch import BurstGrouper, Route
from relay.metrics import CONTENT_TYPE, RelayMetrics
from relay.store_events import (
    MINIO_BODY_SCHEMA,
    SEAWEEDFS_BODY_SCHEMA,
    CreatedObject,
    Ignored,
    Outcome,
    minio_outcomes,
    seaweedfs_outcomes,
    should_trigger,
)
from relay.settings import RelaySettings

log = logging.getLogger("ivi.relay")

PREFECT_TIMEOUT_SECONDS = 10.0
# An oversized body is drained up to this many bytes and for at most this long (so the
# sender reads our 413 instead of a reset connection), then the connection is dropped. A
# sender that declares more than that gets the 413 at once: it would not be drained anyway,
# and a Content-Length that lies upwards must not hold the relay waiting for bytes.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0

Parser = Callable[[Mapping[str, Any]], Iterable[Outcome]]


class PrefectUnavailable(Exception):
    """Prefect's API could not take the events now; the store should retry."""


# --- the answers, as the OpenAPI document (`/openapi.json`) describes them ------------------
class Sent(BaseModel):
    key: str
    event_id: str


class Skipped(BaseModel):
    key: str
    reason: str


class Answer(BaseModel):
    """What became of a webhook body: events posted to Prefect, refused by it, or ignored."""

    posted: list[Sent]
    dropped: list[Sent]
    ignored: list[Skipped]


class Refusal(BaseModel):
    detail: str


EVENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Answer, "description": "Read: every object posted, dropped or ignored."},
    400: {"model": Refusal, "description": "The body is not a JSON object."},
    401: {"model": Refusal, "description": "Missing or wrong bearer token."},
    413: {"model": Refusal, "description": "The body is larger than IVI_RELAY_MAX_BODY_BYTES."},
    503: {"model": Refusal, "description": "Prefect is unavailable: the store should retry."},
}
HEAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Liveness check answered (MinIO)."},
    401: {"description": "Missing or wrong bearer token."},
}
BEARER = [{"bearer": []}]


def _event_route(body_schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI of an event route: the store's body (optional: an empty POST is a liveness
    ping), the bearer token, every answer."""
    return {
        "responses": EVENT_RESPONSES,
        "openapi_extra": {
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": body_schema}},
            },
            "security": BEARER,
        },
    }


def create_app(settings: RelaySettings | None = None) -> FastAPI:
    """The relay for these settings (tests build one pointing at other ports)."""
    settings = settings or RelaySettings()
    _log_to_stderr_when_unconfigured()
    token = settings.webhook_token.get_secret_value().encode()
    if not token:
        log.warning("IVI_WEBHOOK_TOKEN is empty: every webhook call will be refused (401)")
    metrics_token = settings.metrics_token.get_secret_value().encode()
    if not metrics_token:
        log.warning("IVI_METRICS_TOKEN is empty: every GET /metrics will be refused (401)")
    figures = RelayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = settings.prefect_api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}  # Prefect Cloud
        async with httpx.AsyncClient(timeout=PREFECT_TIMEOUT_SECONDS, headers=headers) as client:
            app.state.prefect = client
            try:
                yield
            finally:
                await grouper.close()

    app = FastAPI(title="ivi relay", lifespan=lifespan, docs_url=None, redoc_url=None)
    grouper = BurstGrouper(
        lambda events: post_events(app.state.prefect, settings.prefect_api_url, events),
        max_objects=settings.relay_batch_max,
        window_seconds=settings.relay_batch_window_seconds,
        on_group_done=figures.group_done,
    )
    figures.grouping.set_function(lambda: grouper.waiting)
    _document_bearer_auth(app)

    async def handle(request: Request, source: str, parse: Parser) -> Response:
        response = await answer(request, source, parse)
        figures.requests.labels(source, str(response.status_code)).inc()
        return response

    async def answer(request: Request, source: str, parse: Parser) -> Response:
        if not bearer_matches(request, token):
            return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        if request.method == "HEAD":
            return Response(status_code=200)  # MinIO's liveness check
        try:
            body = await read_capped(request, settings.relay_max_body_bytes)
        except ClientDisconnect:  # nobody is left to answer; not an error of the relay
            log.info("the sender closed the connection before the end of its body")
            return Response(status_code=400)
        if body is None:
            return JSONResponse({"detail": "body too large"}, status_code=413)
        if not body.strip():
            figures.received.labels(source).inc()
            figures.ignored.labels(source, "empty_body").inc()
            return JSONResponse(
                {"posted": [], "dropped": [], "ignored": [{"key": "", "reason": "empty body"}]}
            )
        try:
            document = read_json(body)
        except ValueError:
            return JSONResponse({"detail": "body is not JSON"}, status_code=400)
        if not isinstance(document, dict):
            return JSONResponse({"detail": "body is not a JSON object"}, status_code=400)

        to_post: list[CreatedObject] = []
        ignored: list[Ignored] = []
        try:
            outcomes = list(parse(document))
        except Exception:  # a shape the parsers did not foresee must not become a 500
            log.exception("could not read a well-formed JSON body; acknowledged and dropped")
            outcomes = [Ignored("", "unreadable body (see the relay log)", "unreadable_body")]
        figures.received.labels(source).inc(len(outcomes))
        for outcome in outcomes:
            if isinstance(outcome, CreatedObject):
                refusal = should_trigger(outcome, settings.raw_bucket)
                if refusal is None:
                    to_post.append(outcome)
                    continue
                outcome = refusal
            ignored.append(outcome)
        for item in ignored:
            log.info("ignored %r: %s", item.key, item.reason)
            figures.ignored.labels(source, item.kind).inc()

        routes: list[Route] = [grouper.route(obj) for obj in to_post]
        events = [obj.prefect_event(route) for obj, route in zip(to_post, routes, strict=True)]
        accepted = True
        if events:
            try:
                accepted = await post_events(request.app.state.prefect, settings.prefect_api_url, events)
            except PrefectUnavailable as error:
                log.warning("Prefect unavailable, asking the store to retry: %s", error)
                figures.unavailable.labels(source).inc(len(events))
                return JSONResponse({"detail": "Prefect API unavailable"}, status_code=503)
            (figures.posted if accepted else figures.dropped).labels(source).inc(len(events))
            if accepted:
                for obj, event, route in zip(to_post, events, routes, strict=True):
                    grouper.accepted(obj, route)
                    log.info("posted %s for %s/%s (event %s, %s)", event["event"], obj.bucket, obj.key,
                             event["id"], route)
        sent = [{"key": o.key, "event_id": e["id"]} for o, e in zip(to_post, events, strict=True)]
        return JSONResponse(
            {
                "posted": sent if accepted else [],
                "dropped": [] if accepted else sent,
                "ignored": [{"key": i.key, "reason": i.reason} for i in ignored],
            }
        )

    @app.post("/minio/events", **_event_route(MINIO_BODY_SCHEMA))
    async def minio_events(request: Request) -> Response:
        """MinIO's webhook target (`notify_webhook` with `auth_token`)."""
        return await handle(request, "minio", minio_outcomes)

    @app.head("/minio/events", response_class=Response, responses=HEAD_RESPONSES,
              openapi_extra={"security": BEARER})
    async def minio_liveness(request: Request) -> Response:
        """MinIO's liveness check of its webhook target."""
        return await handle(request, "minio", minio_outcomes)

    @app.post("/seaweedfs/events", **_event_route(SEAWEEDFS_BODY_SCHEMA))
    async def seaweedfs_events(request: Request) -> Response:
        """SeaweedFS' filer webhook (`[notification.webhook]` with `bearer_token`)."""
        return await handle(request, "seaweedfs", seaweedfs_outcomes)

    @app.head("/seaweedfs/events", response_class=Response, responses=HEAD_RESPONSES,
              openapi_extra={"security": BEARER})
    async def seaweedfs_liveness(request: Request) -> Response:
        """A liveness check of the SeaweedFS route (answered like MinIO's)."""
        return await handle(request, "seaweedfs", seaweedfs_outcomes)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus' scrape (bearer token IVI_METRICS_TOKEN): the counters of relay/metrics.py."""
        if not bearer_matches(request, metrics_token):
            return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(figures.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def bearer_matches(request: Request, token: bytes) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; never with an empty token."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds `limit` bytes, whatever Content-Length claimed.

    Past the limit the rest is read and thrown away (up to DRAIN_LIMIT_BYTES, for at most
    DRAIN_SECONDS) so the sender gets the 413 rather than a reset connection; memory never
    holds more than `limit`. Raises ClientDisconnect when the sender leaves half way.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max(limit, DRAIN_LIMIT_BYTES):
        return None
    chunks: list[bytes] = []
    total = 0
    stream = request.stream()
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            break
        chunks.append(chunk)
    if total <= limit:
        return b"".join(chunks)
    with suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in stream:
                total += len(chunk)
                if total > DRAIN_LIMIT_BYTES:
                    break
    return None


def read_json(body: bytes) -> Any:
    """The JSON document in `body`; ValueError for text that is not JSON a store writes.

    Beyond what `json.loads` refuses: NaN and Infinity (not JSON), and lone surrogate escapes
    (`"\\ud800"`), which Python reads but no UTF-8 text can carry, so every later encoding
    (the answer, the Prefect event) would fail on them. Nesting deeper than the interpreter's
    recursion limit and integers over its 4300 digits are ValueErrors too.
    """

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        document = json.loads(body, parse_constant=refuse)
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return document


async def post_events(client: httpx.AsyncClient, api_url: str, events: list[dict[str, Any]]) -> bool:
    """`POST /api/events`: True when Prefect took them, False when it refused them for good;
    PrefectUnavailable for anything worth a retry."""
    try:
        response = await client.post(f"{api_url}/events", json=events)
    except httpx.HTTPError as error:
        raise PrefectUnavailable(f"{type(error).__name__} calling {api_url}/events") from error
    # 401/403: the relay is misconfigured for this server, which a fix makes transient.
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        raise PrefectUnavailable(f"{api_url}/events answered {response.status_code}")
    if response.status_code >= 300:
        log.error(
            "Prefect refused %d event(s) with %d, dropped (reconcile will catch up): %s",
            len(events),
            response.status_code,
            response.text[:500],
        )
        return False
    return True


def _document_bearer_auth(app: FastAPI) -> None:
    """Name the bearer scheme the event routes' `security` refers to in the OpenAPI document
    (the token is checked by hand, in constant time, not by a FastAPI dependency)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {"type": "http", "scheme": "bearer"}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _log_to_stderr_when_unconfigured() -> None:
    """uvicorn configures only its own loggers; give ours a handler so its lines reach the
    service log. Nothing logged here ever contains the token or request headers."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


app = create_app()
