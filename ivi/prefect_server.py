"""The embedded Prefect server: `prefect server start`, with a Retry-After on its 503s.

On SQLite, a write that loses the race for the database lock ("database is locked") is
answered 503, and Prefect's client then waits 2**attempt seconds (2-2.4 s the first time) unless the
response carries a Retry-After. Measured on the upload path: 3 of 10 runs spent 2.0-2.6 s in
one `rate_limit` call for exactly that (`/v2/concurrency_limits/increment` -> 503 -> retry in
1.8-2.4 s -> 200). The lock is held for milliseconds, so a retry after a fraction of a second
succeeds; the clients of the stack get more attempts (`PREFECT_CLIENT_MAX_RETRIES`, set in
ivi/prefect_stack.py) so that their retry budget stays in seconds.

Run as `python -m ivi.prefect_server --host H --port P` (the arguments of `prefect server start`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import prefect.server.api.server as prefect_api_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = 0.2


class RetryAfterOnUnavailable:
    """ASGI middleware: every 503 response gets `Retry-After: RETRY_AFTER_SECONDS`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"retry-after"]
                headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_retry_after)


def with_retry_after(create_app: Callable[..., Any]) -> Callable[..., Any]:
    """Prefect's app factory, its apps wrapped in the middleware (once each: apps are cached)."""

    def create_app_with_retry_after(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        if not getattr(app.state, "ivi_retry_after", False):
            app.add_middleware(RetryAfterOnUnavailable)
            app.state.ivi_retry_after = True
        return app

    return create_app_with_retry_after


def main(argv: list[str]) -> None:
    prefect_api_server.create_app = with_retry_after(prefect_api_server.create_app)
    from prefect.cli import app as prefect_cli

    sys.argv = [sys.argv[0], "server", "start", *argv]  # the CLI reads its arguments there
    prefect_cli()


if __name__ == "__main__":
    main(sys.argv[1:])
