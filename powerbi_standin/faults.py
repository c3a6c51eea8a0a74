"""Faults queued by tests: the next N rows requests fail the way the real service can fail.

A fault is consumed by one rows request (after its key or token has been checked, so that
tests of authentication do not eat faults meant for others). Faults for a dataset are used
before faults for any dataset. Kept in memory: a restart clears them, as it should.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["429", "500", "close", "delay"]
FAULT_KINDS: tuple[str, ...] = ("429", "500", "close", "delay")
MAX_FAULT_SECONDS = 600.0


@dataclass
class Fault:
    """`kind` for the next `count` requests.

    429 answers Too Many Requests with `Retry-After: retry_after`; 500 answers an internal
    error; close drops the connection without answering (the client sees a connection error,
    and no row is stored); delay holds the request `seconds` before handling it normally
    (to fill the pending-requests limit).
    """

    kind: FaultKind
    count: int = 1
    retry_after: float = 1.0
    seconds: float = 1.0


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
    for name in ("retry_after", "seconds"):
        value = body.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        if not 0 <= value <= MAX_FAULT_SECONDS:
            raise ValueError(f"{name} must be between 0 and {MAX_FAULT_SECONDS:g} seconds")
        numbers[name] = float(value)
    dataset_id = body.get("dataset_id")
    if dataset_id is not None and not isinstance(dataset_id, str):
        raise ValueError("dataset_id must be a string")
    fault = Fault(kind, count, numbers["retry_after"], numbers["seconds"])  # type: ignore[arg-type]
    return dataset_id, fault


class FaultQueue:
    def __init__(self) -> None:
        self._queues: dict[str | None, deque[Fault]] = {}

    def add(self, dataset_id: str | None, fault: Fault) -> None:
        self._queues.setdefault(dataset_id, deque()).append(fault)

    def take(self, dataset_id: str) -> Fault | None:
        """The fault the next request to `dataset_id` suffers, if any (one use of it)."""
        for key in (dataset_id, None):
            queue = self._queues.get(key)
            if queue:
                fault = queue[0]
                fault.count -= 1
                if fault.count <= 0:
                    queue.popleft()
                return Fault(fault.kind, 1, fault.retry_after, fault.seconds)
        return None

    def pending(self) -> list[dict[str, object]]:
        return [
            {"dataset_id": key, "kind": f.kind, "count": f.count, "retry_after": f.retry_after}
            for key, queue in self._queues.items()
            for f in queue
        ]

    def clear(self) -> None:
        self._queues.clear()
