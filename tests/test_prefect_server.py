"""The embedded Prefect server's one addition: it retries its own 503s (unit tests)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ivi.prefect_server import RetryUnavailable, with_retries

FAST = (0.0, 0.01, 0.01)


def _app(busy_times: int) -> tuple[FastAPI, list[bytes]]:
    """An app whose /write answers 503 (as Prefect does for "database is locked") the first
    `busy_times` calls; it records the body each call saw."""
    app = FastAPI()
    seen: list[bytes] = []

    @app.post("/write")
    async def write(request: Request) -> JSONResponse:
        seen.append(await request.body())
        if len(seen) <= busy_times:
            return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)
        return JSONResponse({"stored": len(seen)}, status_code=201)

    @app.get("/missing")
    async def missing() -> JSONResponse:
        seen.append(b"")
        return JSONResponse({}, status_code=404)

    return app, seen


async def _send(app: FastAPI, method: str, path: str, body: bytes = b"", *, chunk: int = 0) -> httpx.Response:
    async def pieces():  # type: ignore[no-untyped-def]  # a body that arrives in parts
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.request(method, path, content=pieces() if chunk else body)


@pytest.mark.anyio
async def test_a_busy_write_is_run_again_with_the_same_body_until_it_succeeds() -> None:
    app, seen = _app(busy_times=2)
    app.add_middleware(RetryUnavailable, delays=FAST)
    response = await _send(app, "POST", "/write", b'{"slots": 1}')
    assert response.status_code == 201 and response.json() == {"stored": 3}
    assert seen == [b'{"slots": 1}'] * 3


@pytest.mark.anyio
async def test_a_retried_request_is_routed_again_through_a_mounted_api() -> None:
    """Prefect serves its API as an app mounted at /api under the UI app."""
    api, seen = _app(busy_times=2)
    root = FastAPI()
    root.mount("/api", api)
    root.add_middleware(RetryUnavailable, delays=FAST)
    response = await _send(root, "POST", "/api/write", b"z")
    assert response.status_code == 201 and seen == [b"z"] * 3


class DatabaseLocked(Exception):
    pass


@pytest.mark.anyio
async def test_a_503_from_an_exception_handler_is_retried_as_prefect_raises_it() -> None:
    """Prefect answers "database is locked" from an exception handler for `Exception`, which
    Starlette runs in its outermost middleware and then re-raises."""
    api = FastAPI()
    calls: list[int] = []

    @api.post("/write")
    async def write() -> dict[str, int]:
        calls.append(1)
        if len(calls) <= 2:
            raise DatabaseLocked("database is locked")
        return {"stored": len(calls)}

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)

    api.add_exception_handler(Exception, unavailable)
    root = FastAPI()
    root.mount("/api", api)
    root.add_middleware(RetryUnavailable, delays=FAST)
    response = await _send(root, "POST", "/api/write", b"w")
    assert response.status_code == 200 and response.json() == {"stored": 3}


@pytest.mark.anyio
async def test_a_database_busy_for_longer_lets_the_503_out_to_the_client() -> None:
    app, seen = _app(busy_times=100)
    app.add_middleware(RetryUnavailable, delays=FAST)
    response = await _send(app, "POST", "/write", b"x")
    assert response.status_code == 503
    assert response.json() == {"exception_message": "Service Unavailable"}
    assert len(seen) == len(FAST) + 1


@pytest.mark.anyio
async def test_other_answers_pass_once_and_large_bodies_are_not_buffered() -> None:
    app, seen = _app(busy_times=100)
    app.add_middleware(RetryUnavailable, delays=FAST)
    assert (await _send(app, "GET", "/missing")).status_code == 404
    assert seen == [b""]
    import ivi.prefect_server as module

    original = module.MAX_BUFFERED_BODY_BYTES
    module.MAX_BUFFERED_BODY_BYTES = 4
    try:
        app2, seen2 = _app(busy_times=100)
        app2.add_middleware(RetryUnavailable, delays=FAST)
        response = await _send(app2, "POST", "/write", b"0123456789", chunk=3)
        small = await _send(app2, "POST", "/write", b"012", chunk=2)
    finally:
        module.MAX_BUFFERED_BODY_BYTES = original
    assert response.status_code == 503 and seen2[0] == b"0123456789"  # once, body intact
    assert small.status_code == 503 and seen2[1:] == [b"012"] * (len(FAST) + 1)


@pytest.mark.anyio
async def test_the_wrapped_factory_adds_the_middleware_once_to_a_cached_app() -> None:
    cached, seen = _app(busy_times=1)
    factory = with_retries(lambda *args, **kwargs: cached)
    assert factory() is factory(final=True) is cached
    assert [m.cls for m in cached.user_middleware].count(RetryUnavailable) == 1
    assert (await _send(cached, "POST", "/write", b"y")).status_code == 201
    assert len(seen) == 2
