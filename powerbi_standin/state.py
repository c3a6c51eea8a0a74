"""What the stand-in holds while it runs: the store, the limits, tokens, faults and traffic.

Everything but the store is in memory and starts empty after a restart, as the service's own
throttling state would.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from powerbi_standin.faults import FaultQueue
from powerbi_standin.limits import AdjustableClock, Limits, SlidingWindow
from powerbi_standin.store import Dataset, Store
from powerbi_standin.tokens import TokenIssuer


REQUEST_LOG_LENGTH = 100_000


@dataclass
class Traffic:
    """One dataset's rate state: POSTs in the last minute and in the last hour (the second
    counts once a table holds 250,000 rows), rows in the last hour, in flight; and every rows
    request with its answer (refused ones too: a client's retries count against the
    service's per-minute limit as much as its accepted POSTs)."""

    posts: SlidingWindow
    rows: SlidingWindow
    posts_hour: SlidingWindow
    pending: int = 0
    requests: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_LENGTH)
    )


@dataclass
class StandIn:
    store: Store
    limits: Limits
    issuer: TokenIssuer
    clock: AdjustableClock
    faults: FaultQueue = field(default_factory=FaultQueue)
    traffic: dict[str, Traffic] = field(default_factory=dict)

    def traffic_of(self, dataset_id: str) -> Traffic:
        if dataset_id not in self.traffic:
            self.traffic[dataset_id] = Traffic(
                SlidingWindow(60.0, self.clock),
                SlidingWindow(3600.0, self.clock),
                SlidingWindow(3600.0, self.clock),
            )
        return self.traffic[dataset_id]

    def limits_of(self, dataset: Dataset) -> Limits:
        return self.limits.with_overrides(dataset.limit_overrides)
