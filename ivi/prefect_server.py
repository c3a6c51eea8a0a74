"""The embedded Prefect server: `prefect server start`, retrying its own SQLite-busy 503s.

On SQLite, a write that loses the race for the database lock ("database is locked") is rolled
back and answered 503, and Prefect's client then sleeps 2**attempt seconds (2-2.4 s the first
time). Measured on the upload path: 3 of 10 runs spent 2.0-2.6 s in one `rate_limit` call for
exactly that (`/v2/concurrency_limits/increment` -> 503 -> "another attempt in 1.8-2.4 s" ->
200), the largest single share of the upload-to-report time. The lock is held for
milliseconds, so the server retries such a request itself a few times within a second before
it lets the 503 out; the clients' own retries (and their budget of about a minute) stay as
Prefect sets them. A 503 means the request's transaction was rolled back, so running it again
is exactly what the client would do.

Run as `python -m ivi.prefect_server --host H --port P` (the arguments of `prefect server start`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import prefect.server.api.server as prefect_api_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_DELAYS_SECONDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)  # 0.82 s in all
MAX_BUFFERED_BODY_BYTES = 8 * 1024 * 1024  # larger requests are not retried here


class RetryUnavailable:
    """ASGI middleware: an HTTP request answered 503 is run again after a short pause."""

    def __init__(self, app: ASGIApp, delays: tuple[float, ...] = RETRY_DELAYS_SECONDS) -> None:
        self.app = app
        self.delays = delays

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, MAX_BUFFERED_BODY_BYTES)
        if not complete:  # too large to keep: one attempt, what was read and then the rest
            await self.app(scope, _prepend(body, receive), send)
            return
        for delay in (*self.delays, None):
            if await self._attempt(scope, body, receive, send, last=delay is None):
                return
            await asyncio.sleep(delay or 0)

    async def _attempt(self, scope: Scope, body: bytes, receive: Receive, send: Send, *, last: bool) -> bool:
        """Run the app once; False when it answered 503 and nothing was sent (retry)."""
        delivered = False
        swallowed = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # a disconnect, when the client goes away

        async def forward(message: Message) -> None:
            nonlocal swallowed
            if message["type"] == "http.response.start" and message["status"] == 503 and not last:
                swallowed = True
            if not swallowed:
                await send(message)

        # routing writes into the scope (a mount sets root_path, path params, the endpoint):
        # each attempt starts from the scope as the server gave it
        try:
            await self.app(dict(scope), replay, forward)
        except Exception:
            # Prefect turns "database is locked" into its 503 in an exception handler, and
            # Starlette re-raises the exception after that response is sent; when this
            # attempt is retried, the exception is answered by the next attempt
            if not swallowed:
                raise
        return not swallowed


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it is all there (False: over `limit`, more to read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True  # the client left; the app sees what came
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _prepend(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` first (more to come), then the rest of the request."""
    sent = False

    async def receive_rest() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": True}
        return await receive()

    return receive_rest


def with_retries(create_app: Callable[..., Any]) -> Callable[..., Any]:
    """Prefect's app factory, its apps wrapped in the middleware (once each: apps are cached)."""

    def create_app_with_retries(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        if not getattr(app.state, "ivi_retry_unavailable", False):
            app.add_middleware(RetryUnavailable)
            app.state.ivi_retry_unavailable = True
        return app

    return create_app_with_retries


def main(argv: list[str]) -> None:
    prefect_api_server.create_app = with_retries(prefect_api_server.create_app)
    from prefect.cli import app as prefect_cli

    sys.argv = [sys.argv[0], "server", "start", *argv]  # the CLI reads its arguments there
    prefect_cli()


if __name__ == "__main__":
    main(sys.argv[1:])
