"""The service's documented limits, and the sliding windows that enforce the rate ones.

Kept apart from the routes so that a test can build an app with smaller limits, and so that
the numbers the stand-in enforces can be read in one place.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

MIB = 1024 * 1024
KIB = 1024


@dataclass(frozen=True)
class Limits:
    """Power BI push-dataset limits (see the design page's "Facts the design rests on")."""

    rows_per_post: int = 10_000
    posts_per_minute: int = 120
    rows_per_hour: int = 1_000_000
    pending_requests: int = 5
    columns_per_table: int = 75
    tables_per_dataset: int = 75
    string_chars: int = 4_000
    body_bytes: int = 16 * MIB
    streaming_body_bytes: int = 15 * KIB
    # Per table, per Microsoft's "Push semantic model limitations" page: a dataset created
    # without a retention policy stores at most 5,000,000 rows per table (a POST beyond is
    # refused); with `basicFIFO` a table keeps the latest 200,000 rows (the oldest are
    # dropped); once a table holds 250,000 rows or more, the dataset takes 120 POST rows
    # requests per hour.
    rows_per_table: int = 5_000_000
    fifo_rows_per_table: int = 200_000
    large_table_rows: int = 250_000
    posts_per_hour_large_table: int = 120

    def with_overrides(self, overrides: Mapping[str, object]) -> Limits:
        """These limits with some replaced (per dataset, for tests); unknown names raise."""
        known = {field.name for field in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {sorted(known)}")
        values: dict[str, int] = {}
        for name, value in overrides.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {name!r} must be a positive integer")
            values[name] = value
        return replace(self, **values)


Clock = Callable[[], float]


class AdjustableClock:
    """A clock the admin API can move forward, so that a test can see an hourly window pass
    without waiting an hour (the caps stay the service's: only time is simulated)."""

    def __init__(self, base: Clock = time.monotonic) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> float:
        """Move the clock `seconds` forward; the total offset so far."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError("the clock only moves forward, by a finite number of seconds")
        self.offset += seconds
        return self.offset


class SlidingWindow:
    """Weighted events in the last `seconds`; says how long until `weight` more would fit.

    A sliding window rather than fixed minutes, because the service throttles any 60 s span:
    a client that bursts at the end of one minute and the start of the next is throttled.
    """

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.seconds:
            _, weight = self._events.popleft()
            self._total -= weight

    def total(self) -> int:
        self._expire(self._clock())
        return self._total

    def wait_for(self, weight: int, capacity: int) -> float:
        """Seconds until `weight` more fits under `capacity` (0 when it fits now)."""
        now = self._clock()
        self._expire(now)
        if self._total + weight <= capacity:
            return 0.0
        if weight > capacity:
            return self.seconds
        excess = self._total + weight - capacity
        for stamp, event_weight in self._events:
            excess -= event_weight
            if excess <= 0:
                return max(stamp + self.seconds - now, 0.001)
        return self.seconds

    def add(self, weight: int = 1) -> None:
        now = self._clock()
        self._expire(now)
        self._events.append((now, weight))
        self._total += weight


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, at least 1 (a 0 would invite an immediate retry)."""
    return str(max(1, math.ceil(seconds)))
