"""HTTP plumbing shared by the routes: answers in the service's shape, bodies, dropped sockets.

The service answers errors as `{"error": {"code", "message"}}` and throttling as 429 with
Retry-After; bodies are read with a size limit; and a test can ask for a connection closed
without any answer, which ASGI cannot express (see `ConnectionDropper`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from powerbi_standin.limits import retry_after_header
from powerbi_standin.validation import Rejected, parse_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_BODY_BYTES = 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024  # read at most this much of a body only to throw it away


class DropConnection(Exception):
    """Raised by a route to make the server close the socket without answering."""


class ConnectionDropper:
    """ASGI middleware that turns `DropConnection` into a closed socket, not a 500.

    ASGI has no "close without answering", and uvicorn answers 500 to any exception raised
    before a response starts. But uvicorn's `receive` is a bound method of the request cycle,
    which holds the connection's transport: aborting that transport sends the client a reset
    with no response at all, which `requests` reports as a `ConnectionError`. This middleware
    sits inside Starlette's error middleware, where `receive` is still uvicorn's own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except DropConnection:
            transport = getattr(getattr(receive, "__self__", None), "transport", None)
            if transport is None:
                raise RuntimeError("this server does not expose its transport") from None
            transport.abort()
            # Let the server see the connection is lost, so it does not try to answer 500.
            for _ in range(3):
                await asyncio.sleep(0)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def throttled(code: str, message: str, seconds: float) -> JSONResponse:
    return error_response(429, code, message, {"Retry-After": retry_after_header(seconds)})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or `Rejected` 413 when it is over `limit` bytes.

    An oversized body is still read to its end (and thrown away) so that the client, which
    sends its whole body before reading the answer, gets the 413 rather than a reset socket.
    """
    give_up = 4 * limit + DRAIN_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > give_up:
        raise DropConnection()  # far too big to be worth draining
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > give_up:  # a chunked body without end: stop reading, drop the socket
            raise DropConnection()
    if size > limit:
        raise Rejected(
            f"the request body is {size} bytes; the limit is {limit} bytes",
            code="RequestEntityTooLarge",
            status=413,
        )
    return b"".join(chunks)


async def drained(request: Request, response: Response) -> Response:
    """`response`, after reading what is left of the request body.

    A server that answers early and closes with unread bytes in its socket makes the kernel
    send a reset, and the client, still writing its body, sees a broken connection instead of
    the answer. Reading the rest first makes every early answer (401, 403, 404, 429) arrive.
    """
    try:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAIN_BYTES:
                break  # not worth reading further; the client may see a reset
    except Exception:  # already consumed, or the client went away: nothing left to read
        pass
    return response


async def read_admin_json(request: Request) -> Any:
    """A small JSON body (test and admin routes, create-dataset)."""
    return parse_json(await read_body(request, ADMIN_BODY_BYTES))
