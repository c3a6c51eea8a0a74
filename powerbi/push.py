"""Pushing rows to Power BI: one POST with retries, and the errors a push can end with.

Plain functions, importable and testable without Prefect (the task wrappers live with the
flow). `rows_to_json_batches` (in `powerbi/batches.py`, re-exported here) turns rows into
numbered, deterministic batches within the service's limits; then:

- `post_batch` sends one batch: a 429 waits for its Retry-After, a 5xx or a broken connection
  retries with bounded exponential backoff, a 401 refreshes the token once, and any other
  refusal raises with the service's own message. Neither the push key nor the token ever
  appears in an exception or a log line.
- A 429 asking for more than about a minute (`RetryPolicy.defer_after`: the hourly caps,
  120 POSTs an hour once a table holds 250,000 rows, or 1,000,000 rows an hour) is not waited
  for: `PowerBIThrottled` says until when, and the caller defers the rest of the push instead
  of holding a worker for an hour. A table at its row cap raises `PowerBITableFull`.

A destination is anything with the `Destination` methods; the blocks in `blocks/powerbi.py`
are the two real ones.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from powerbi.batches import (
    MAX_BYTES_PER_POST,
    MAX_ROWS_PER_POST,
    MAX_STRING_CHARS,
    STREAMING_MAX_BYTES,
    Batch,
    Columns,
    RowTooLarge,
    rows_to_json_batches,
)

__all__ = [
    "MAX_BYTES_PER_POST",
    "MAX_ROWS_PER_POST",
    "MAX_STRING_CHARS",
    "STREAMING_MAX_BYTES",
    "Batch",
    "Destination",
    "PostStats",
    "PowerBIError",
    "PowerBIRejected",
    "PowerBITableFull",
    "PowerBIThrottled",
    "PowerBIUnavailable",
    "PushSummary",
    "RetryPolicy",
    "RowTooLarge",
    "post_batch",
    "push_rows",
    "redact",
    "rows_to_json_batches",
]

log = logging.getLogger(__name__)


# Errors ------------------------------------------------------------------------------------
class PowerBIError(Exception):
    """A push that did not go through. The text never holds the key or the token."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PowerBIRejected(PowerBIError):
    """The service refused the batch (400, 403, 404, 413, or 401 after a token refresh).

    Retrying the same batch cannot help: the task should fail with this message.
    """


class PowerBITableFull(PowerBIRejected):
    """The table holds all the rows it may (5,000,000 without a retention policy): no retry
    can help until the dataset changes (a basicFIFO dataset, or a new table)."""


class PowerBIThrottled(PowerBIError):
    """A 429 whose Retry-After is longer than the caller will wait: push later.

    `retry_after` is the service's wait in seconds, as it asked (a day at most).
    """

    def __init__(
        self, message: str, *, retry_after: float, status: int | None = 429, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


#: Error codes of a refusal at a table's row cap. Microsoft documents the cap (5,000,000 rows
#: per table without a retention policy), not its answer: this is the stand-in's code, and
#: the message test below catches the same refusal worded otherwise.
TABLE_FULL_CODES = frozenset({"RowLimitExceeded"})
_TABLE_FULL_WORDS = re.compile(r"(max(imum)?|limit)\b.*\brows\b.*\b(table|stored)", re.IGNORECASE)


def is_table_full(status: int, code: str | None, message: str) -> bool:
    """True when a 4xx answer says the table cannot take more rows."""
    if status in (429,) or not 400 <= status < 500:
        return False
    return (code in TABLE_FULL_CODES) or bool(_TABLE_FULL_WORDS.search(message))


class PowerBIUnavailable(PowerBIError):
    """The service kept failing (5xx, broken connections or 429s) past the retry budget.

    Transient: a later retry of the task may succeed, and resumes at this batch.
    """


# Redaction ---------------------------------------------------------------------------------
_KEY_PARAM = re.compile(r"([?&](?:key|sig|code|access_token)=)[^&#\s'\"]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
REDACTED = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL keys, bearer tokens and the given secret values replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _KEY_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Redacts URL keys in log records: urllib3 logs every request line at DEBUG, query and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_REDACTING_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Make sure the loggers that see request URLs redact them (idempotent)."""
    for name in ("urllib3.connectionpool", __name__):
        logger = logging.getLogger(name)
        if _REDACTING_FILTER not in logger.filters:
            logger.addFilter(_REDACTING_FILTER)


install_log_redaction()


# Destinations ------------------------------------------------------------------------------
class Destination(Protocol):
    """Where batches go: a push URL (streaming dataset) or a REST table (push dataset)."""

    def rows_url(self) -> str:
        """The URL to POST rows to (may hold a secret: never log it unredacted)."""
        ...

    def request_body(self, batch: Batch) -> bytes:
        """The POST body for a batch (the bare array, or `{"rows": [...]}`)."""
        ...

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate the POST (empty for a push URL)."""
        ...

    def refresh_credentials(self) -> bool:
        """Drop cached credentials after a 401; True when a retry can now succeed."""
        ...

    def max_batch_bytes(self) -> int:
        """The byte limit for a batch's JSON array under this destination's request limit."""
        ...

    def describe(self) -> str:
        """Where the rows go, safe for logs and reports (no key, no token)."""
        ...

    def secret_values(self) -> list[str]:
        """Strings that must never appear in an error or a log line."""
        ...


# Posting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How long `post_batch` keeps trying before it gives up with `PowerBIUnavailable`."""

    max_attempts: int = 6  # for 5xx and broken connections, the first attempt included
    backoff_base: float = 1.0  # seconds before the first retry; doubles each time
    backoff_max: float = 30.0
    max_throttled: int = 20  # 429s answered for one batch
    default_retry_after: float = 1.0  # when a 429 has no usable Retry-After
    max_retry_after: float = 600.0  # a longer Retry-After is waited for this long at most
    # A 429 asking for longer than this is not waited for (`PowerBIThrottled`): the hourly
    # caps answer with up to an hour, and a worker must not sit that out.
    defer_after: float = 60.0
    timeout: tuple[float, float] = (10.0, 120.0)  # connect, read

    def backoff(self, failures: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** (failures - 1)))


MAX_REQUESTED_WAIT = 86_400.0  # a Retry-After beyond a day is taken as a day


def requested_wait(value: str | None, policy: RetryPolicy) -> float:
    """Seconds a 429 asks to wait, as asked: `Retry-After` as seconds or as an HTTP date."""
    if not value:
        return policy.default_retry_after
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return policy.default_retry_after
    if not math.isfinite(seconds):
        return policy.default_retry_after
    return min(max(seconds, 0.0), MAX_REQUESTED_WAIT)


def retry_after_seconds(value: str | None, policy: RetryPolicy) -> float:
    """Seconds `post_batch` waits for a 429: what it asks, at most `max_retry_after`."""
    return min(requested_wait(value, policy), policy.max_retry_after)


def service_message(response: requests.Response) -> tuple[str | None, str]:
    """(code, message) from the service's `{"error": {"code", "message"}}`, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or response.reason or "").strip()[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message") or error.get("pbi.error") or code or ""
        return (str(code) if code else None), str(message)[:500]
    return None, json.dumps(body)[:500]


@dataclass
class PostStats:
    """What one `post_batch` went through (for logs and the run report)."""

    attempts: int = 0
    throttled: int = 0
    failures: int = 0
    waited: float = 0.0
    statuses: list[int] = field(default_factory=list)


def post_batch(
    destination: Destination,
    batch: Batch,
    session: requests.Session,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    stats: PostStats | None = None,
    before_each_post: Callable[[], None] = lambda: None,
) -> None:
    """POST one batch until the service accepts it, or raise `PowerBIError`.

    `before_each_post` runs before every attempt, retries included: a retry is a POST too,
    and counts against the service's per-minute limit (the flow takes a rate-limit slot there).

    429: wait for Retry-After, then retry (at most `policy.max_throttled` times). 5xx and
    connection errors: exponential backoff, at most `policy.max_attempts` tries in all. 401:
    refresh the credentials once and retry. Anything else 4xx: `PowerBIRejected` with the
    service's code and message. Errors and logs name the destination by `describe()` only.

    A broken connection is retried although the service might have stored the rows before
    the connection broke: Power BI has no idempotency key, so a retry is the only way not to
    lose a batch, and the window for a duplicate is the time between the service committing
    and answering.
    """
    stats = stats if stats is not None else PostStats()
    secrets = destination.secret_values()
    where = destination.describe()
    body = destination.request_body(batch)
    refreshed = False
    while True:
        before_each_post()
        stats.attempts += 1
        headers = {"Content-Type": "application/json", **destination.auth_headers()}
        try:
            response = session.post(
                destination.rows_url(), data=body, headers=headers, timeout=policy.timeout
            )
        except requests.RequestException as error:
            stats.failures += 1
            reason = redact(f"{type(error).__name__}: {error}", secrets)
            if stats.failures >= policy.max_attempts:
                raise PowerBIUnavailable(
                    f"batch {batch.number} to {where}: no answer after {stats.failures} "
                    f"attempts; last error {reason}"
                ) from None
            wait = policy.backoff(stats.failures)
            log.warning("batch %d to %s: %s; retrying in %.1f s", batch.number, where, reason, wait)
            sleep(wait)
            stats.waited += wait
            continue
        status = response.status_code
        stats.statuses.append(status)
        if 200 <= status < 300:
            log.debug("batch %d (%d rows) accepted by %s", batch.number, batch.row_count, where)
            return
        code, message = service_message(response)
        message = redact(message, secrets)
        if status == 429:
            stats.throttled += 1
            asked = requested_wait(response.headers.get("Retry-After"), policy)
            if asked > policy.defer_after:
                raise PowerBIThrottled(
                    f"batch {batch.number} to {where}: throttled for {asked:.0f} s, longer than "
                    f"the {policy.defer_after:.0f} s a push waits: {message}",
                    retry_after=asked,
                    code=code,
                )
            if stats.throttled > policy.max_throttled:
                raise PowerBIUnavailable(
                    f"batch {batch.number} to {where}: still throttled after "
                    f"{policy.max_throttled} waits: {message}",
                    status=status,
                    code=code,
                )
            wait = retry_after_seconds(response.headers.get("Retry-After"), policy)
            log.info("batch %d to %s throttled (429); waiting %.1f s", batch.number, where, wait)
            sleep(wait)
            stats.waited += wait
            continue
        if status >= 500:
            stats.failures += 1
            if stats.failures >= policy.max_attempts:
                raise PowerBIUnavailable(
                    f"batch {batch.number} to {where}: HTTP {status} after {stats.failures} "
                    f"attempts: {message}",
                    status=status,
                    code=code,
                )
            wait = policy.backoff(stats.failures)
            log.warning(
                "batch %d to %s: HTTP %d; retrying in %.1f s", batch.number, where, status, wait
            )
            sleep(wait)
            stats.waited += wait
            continue
        if status == 401 and not refreshed and destination.refresh_credentials():
            refreshed = True
            log.info("batch %d to %s: 401, token refreshed; retrying", batch.number, where)
            continue
        refusal = PowerBITableFull if is_table_full(status, code, message) else PowerBIRejected
        raise refusal(
            f"batch {batch.number} to {where} refused with HTTP {status}"
            f"{f' {code}' if code else ''}: {message}",
            status=status,
            code=code,
        )


PUSHED = "pushed"  # every batch accepted (a file with no clean row too)
DEFERRED = "deferred"  # throttled for long: the rest is pushed later by the catch-up
TABLE_FULL = "table_full"  # the table is at its row cap: nothing more can be pushed there
SKIPPED = "skipped"  # no Power BI destination for the contract, or nothing to push


@dataclass
class PushSummary:
    """What a whole push did, for the run report (no secrets: `destination` is described).

    `status` is one of PUSHED, DEFERRED, TABLE_FULL, SKIPPED; `posts` counts the POST
    requests made (retries included, batches found in the cache excluded) and `throttled`
    the 429 answers among them.
    """

    destination: str | None
    rows: int = 0
    batches: int = 0
    strings_cut: int = 0
    infinite_nulled: int = 0
    skipped_reason: str | None = None
    status: str = PUSHED
    posts: int = 0
    throttled: int = 0
    message: str | None = None
    retry_at: str | None = None  # DEFERRED: when the service said to come back (ISO, UTC)

    def __post_init__(self) -> None:
        if self.skipped_reason and self.status == PUSHED:
            self.status = SKIPPED

    def add(self, batch: Batch) -> None:
        """Count a batch the service accepted."""
        self.rows += batch.row_count
        self.batches += 1
        self.strings_cut += batch.strings_cut
        self.infinite_nulled += batch.infinite_nulled

    def count_requests(self, stats: PostStats) -> None:
        """Count the POSTs and 429s of one `post_batch`."""
        self.posts += stats.attempts
        self.throttled += stats.throttled

    def as_report(self) -> dict[str, object]:
        return {
            "powerbi": self.status,
            "powerbi_destination": self.destination,
            "powerbi_rows": self.rows,
            "powerbi_batches": self.batches,
            "powerbi_strings_cut": self.strings_cut,
            "powerbi_infinite_nulled": self.infinite_nulled,
            "powerbi_posts": self.posts,
            "powerbi_throttled": self.throttled,
            **({"powerbi_skipped": self.skipped_reason} if self.skipped_reason else {}),
            **({"powerbi_message": self.message} if self.message else {}),
            **({"powerbi_retry_at": self.retry_at} if self.retry_at else {}),
        }


def push_rows(
    destination: Destination,
    rows: Any,
    columns: Columns,
    session: requests.Session,
    *,
    policy: RetryPolicy = RetryPolicy(),
    max_rows: int = MAX_ROWS_PER_POST,
    sleep: Callable[[float], None] = time.sleep,
) -> PushSummary:
    """Batch and post everything in order, one batch at a time (scripts and benchmarks).

    The flow does not use this: it posts each batch as its own cached task, so that a retried
    run skips the batches already accepted.
    """
    summary = PushSummary(destination.describe())
    for batch in rows_to_json_batches(rows, columns, max_rows, destination.max_batch_bytes()):
        post_batch(destination, batch, session, policy=policy, sleep=sleep)
        summary.add(batch)
    return summary
