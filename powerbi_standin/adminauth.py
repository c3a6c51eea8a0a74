"""The admin API's own token: who may register datasets, read keys, delete rows, queue faults.

The `/_standin/...` routes and the page at `/` are for tests and the demo, not part of the
service, and they hand out every dataset's push key. When a token is configured, each of them
answers 401 unless the request carries it, as `Authorization: Bearer <token>` or, so that a
browser can show the page, as the password of HTTP Basic authentication (any user name).
`GET /_standin/healthz` stays open: it says only that the server answers.

Without a token the admin API is open, which `python -m powerbi_standin` allows only on a
loopback address (`require_token_off_loopback`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

ADMIN_TOKEN_ENV = "POWERBI_STANDIN_ADMIN_TOKEN"
ADMIN_PREFIX = "/_standin"
HEALTH_PATH = "/_standin/healthz"
LOOPBACK_NAMES = frozenset({"localhost"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AdminTokenRequired(ValueError):
    """The stand-in would listen beyond loopback with an open admin API."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for anything else (0.0.0.0, names)."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def require_token_off_loopback(host: str, token: str | None) -> None:
    """Raise AdminTokenRequired when `host` is not loopback and there is no admin token."""
    if not token and not is_loopback(host):
        raise AdminTokenRequired(
            f"refusing to listen on {host or 'all interfaces'} with an open admin API: "
            f"set {ADMIN_TOKEN_ENV} or --admin-token-file (or bind to 127.0.0.1)"
        )


def is_admin_path(path: str) -> bool:
    """The page and every `/_standin` route, the health check excepted."""
    if path == HEALTH_PATH:
        return False
    return path == "/" or path == ADMIN_PREFIX or path.startswith(f"{ADMIN_PREFIX}/")


def presented_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of a Bearer header, or the password of a Basic one; None without either."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, credentials = value.decode("latin-1").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (bytes, so that non-ASCII input is compared too)."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class AdminGuard:
    """ASGI middleware answering 401 to an admin request without the admin token.

    Plain ASGI (not Starlette's BaseHTTPMiddleware): `receive` reaches the inner app
    untouched, which `ConnectionDropper` needs.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("AdminGuard needs a non-empty token")
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if token_matches(presented_token(list(scope.get("headers", []))), self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": {"code": "Unauthorized", "message": "the stand-in's admin token is required"}}
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"www-authenticate", b'Basic realm="powerbi-standin admin", charset="UTF-8"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
