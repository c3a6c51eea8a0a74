"""The embedded Prefect server's one addition: a short Retry-After on its 503s (unit tests)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ivi.prefect_server import RETRY_AFTER_SECONDS, RetryAfterOnUnavailable, with_retry_after


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/busy")
    def busy() -> JSONResponse:  # what Prefect answers when SQLite said "database is locked"
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)

    @app.get("/busy-with-header")
    def busy_with_header() -> JSONResponse:
        return JSONResponse({}, status_code=503, headers={"Retry-After": "30"})

    @app.get("/fine")
    def fine() -> dict[str, bool]:
        return {"ok": True}

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.anyio
async def test_a_503_gets_a_short_retry_after_and_keeps_its_body() -> None:
    app = _app()
    app.add_middleware(RetryAfterOnUnavailable)
    response = await _get(app, "/busy")
    assert response.status_code == 503
    assert response.headers.get_list("retry-after") == [str(RETRY_AFTER_SECONDS)]
    assert response.json() == {"exception_message": "Service Unavailable"}
    assert float(response.headers["retry-after"]) < 1  # Prefect's client waits 2**n s otherwise


@pytest.mark.anyio
async def test_an_existing_retry_after_is_replaced_and_other_responses_are_untouched() -> None:
    app = _app()
    app.add_middleware(RetryAfterOnUnavailable)
    replaced = await _get(app, "/busy-with-header")
    assert replaced.headers.get_list("retry-after") == [str(RETRY_AFTER_SECONDS)]
    fine = await _get(app, "/fine")
    assert fine.status_code == 200 and "retry-after" not in fine.headers


@pytest.mark.anyio
async def test_the_wrapped_factory_adds_the_middleware_once_to_a_cached_app() -> None:
    cached = _app()
    factory = with_retry_after(lambda *args, **kwargs: cached)
    assert factory() is factory(final=True) is cached
    assert [m.cls for m in cached.user_middleware].count(RetryAfterOnUnavailable) == 1
    response = await _get(cached, "/busy")
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


def test_prefect_clients_honour_the_header() -> None:
    """Prefect's client takes Retry-After over its 2**attempt back-off (checked in its source,
    so a Prefect upgrade that changes this fails here rather than slowing every run)."""
    import inspect

    from prefect.client import base

    source = inspect.getsource(base.PrefectHttpxAsyncClient._send_with_retry)
    assert 'if "Retry-After" in response.headers' in source
    assert "2**try_count" in source
