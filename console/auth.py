"""Sign-in and CSRF: who may read or write, and proof that a form came from our own page.

- A person signs in with IVI_CONSOLE_USER / IVI_CONSOLE_PASSWORD; the session is a cookie
  signed with IVI_CONSOLE_SESSION_SECRET (Starlette's SessionMiddleware, itsdangerous),
  HttpOnly and SameSite=strict, so another site's page neither reads nor sends it.
- Every POST from a page carries the session's CSRF token (a hidden field, or the
  `X-CSRF-Token` header for the upload's XHR), compared in constant time.
- A script sends `Authorization: Bearer <IVI_CONSOLE_TOKEN>` (when that is set) instead:
  no cookie, so no CSRF token either.
Nothing is readable without one of the two.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Any

from starlette.requests import Request

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class NotSignedIn(Exception):
    """The request has neither a signed-in session nor the bearer token."""


class CsrfRefused(Exception):
    """A write without the session's CSRF token."""


def _same(given: str, expected: str) -> bool:
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


def bearer_ok(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


def credentials_ok(user: str, password: str, expected_user: str, expected_password: str) -> bool:
    """Both compared in full, in constant time (no early exit that tells which was wrong)."""
    user_ok = _same(user, expected_user)
    password_ok = _same(password, expected_password)
    return user_ok and password_ok


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made when the session has none."""
    session: dict[str, Any] = request.session
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def signed_in_user(request: Request, token: str) -> str:
    """Who makes the request; raises NotSignedIn."""
    if bearer_ok(request, token):
        return "token"
    user = request.session.get("user")
    if isinstance(user, str) and user:
        return user
    raise NotSignedIn


def check_csrf(request: Request, token: str, submitted: str | None) -> None:
    """Raises CsrfRefused unless the request is a bearer one or carries the session's token."""
    if bearer_ok(request, token):
        return
    given = submitted or request.headers.get(CSRF_HEADER, "")
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not _same(given, expected):
        raise CsrfRefused


def sign_in(request: Request, user: str) -> None:
    """A fresh session for the user: a new CSRF token, nothing kept from before sign-in."""
    language = request.session.get("lang")
    request.session.clear()
    request.session["user"] = user
    request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    if language:
        request.session["lang"] = language


class SignInThrottle:
    """At most `failures` wrong passwords per client address in `window` seconds: guessing
    the password through the form is slowed to a crawl (a later right one still waits)."""

    def __init__(self, failures: int = 5, window: float = 300.0) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._seen.setdefault(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def allowed(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) < self.failures

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._seen) > 10_000:  # forget the quietest addresses rather than grow
                for stale in [c for c, times in self._seen.items() if not self._recent(c, now)]:
                    del self._seen[stale]


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this site only (never `//host` or `https://`)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/files"
