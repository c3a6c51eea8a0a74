"""Faults queued by tests: rows requests fail the way the real service can fail.

A fault answers the next `count` rows requests, or, with `for_seconds`, every rows request
during a window of that many seconds (an outage). The window opens with the first request the
fault answers; windowed faults queued one after the other follow back to back (429 for 20 s,
then 500 for 20 s, then closed connections for 20 s: one minute of trouble). Faults meet
requests after their key or token has been checked, so that tests of authentication do not eat
faults meant for others; faults for a dataset come before faults for any dataset. Kept in
memory: a restart clears them, as it should.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["429", "500", "close", "delay"]
FAULT_KINDS: tuple[str, ...] = ("429", "500", "close", "delay")
MAX_FAULT_SECONDS = 600.0  # how long a fault may hold requests (delay, for_seconds)
# Retry-After is only a header: a day, so that a test can stand in for the hourly caps.
MAX_RETRY_AFTER_SECONDS = 86_400.0


@dataclass
class Fault:
    """`kind` for the next `count` requests, or for every request during `for_seconds`.

    429 answers Too Many Requests with `Retry-After: retry_after`; 500 answers an internal
    error; close drops the connection without answering (the client sees a connection error,
    and no row is stored); delay holds the request `seconds` before handling it normally
    (to fill the pending-requests limit).
    """

    kind: FaultKind
    count: int = 1
    retry_after: float = 1.0
    seconds: float = 1.0
    for_seconds: float | None = None
    until: float | None = None  # a window's end on the queue's clock, once it has opened


def parse_fault(body: object) -> tuple[str | None, Fault]:
    """(dataset id or None for any dataset, fault) from a `POST /_standin/faults` body."""
    if not isinstance(body, dict):
        raise ValueError("a fault is an object: {dataset_id?, kind, count, retry_after?, seconds?}")
    kind = str(body.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {list(FAULT_KINDS)}")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        raise ValueError("count must be an integer from 1 to 10000")
    numbers: dict[str, float] = {}
    for name, default in (("retry_after", 1.0), ("seconds", 1.0), ("for_seconds", None)):
        value = body.get(name, default)
        if value is None and default is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        most = MAX_RETRY_AFTER_SECONDS if name == "retry_after" else MAX_FAULT_SECONDS
        if not 0 <= value <= most:
            raise ValueError(f"{name} must be between 0 and {most:g} seconds")
        numbers[name] = float(value)
    dataset_id = body.get("dataset_id")
    if dataset_id is not None and not isinstance(dataset_id, str):
        raise ValueError("dataset_id must be a string")
    fault = Fault(
        kind,  # type: ignore[arg-type]
        count,
        numbers["retry_after"],
        numbers["seconds"],
        numbers.get("for_seconds"),
    )
    return dataset_id, fault


class FaultQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._queues: dict[str | None, deque[Fault]] = {}
        self._clock = clock

    def add(self, dataset_id: str | None, fault: Fault) -> None:
        self._queues.setdefault(dataset_id, deque()).append(fault)

    def take(self, dataset_id: str) -> Fault | None:
        """The fault the next request to `dataset_id` suffers, if any (one use of it)."""
        now = self._clock()
        for key in (dataset_id, None):
            queue = self._queues.get(key)
            while queue:
                fault = queue[0]
                if fault.for_seconds is None:
                    fault.count -= 1
                    if fault.count <= 0:
                        queue.popleft()
                    return Fault(fault.kind, 1, fault.retry_after, fault.seconds)
                if fault.until is None:  # the window opens with the first request it meets
                    fault.until = now + fault.for_seconds
                if now < fault.until:
                    return Fault(fault.kind, 1, fault.retry_after, fault.seconds)
                queue.popleft()
                if queue and queue[0].for_seconds is not None and queue[0].until is None:
                    queue[0].until = fault.until + queue[0].for_seconds  # back to back
        return None

    def pending(self) -> list[dict[str, object]]:
        return [
            {"dataset_id": key, "kind": f.kind, "count": f.count, "retry_after": f.retry_after,
             "for_seconds": f.for_seconds}
            for key, queue in self._queues.items()
            for f in queue
        ]

    def clear(self) -> None:
        self._queues.clear()
