"""The relay's figures for Prometheus (`GET /metrics`, bearer token IVI_METRICS_TOKEN).

Every object a webhook body names is counted once as received, then once as what became of
it: posted to Prefect, dropped (Prefect refused it for good), ignored (by kind), or
unavailable (Prefect could not take it; the store delivers it again). So, per source,
received = posted + dropped + ignored + unavailable. The registry is the app's own, not the
process-wide default, so that each relay built by `create_app` counts for itself.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from relay.store_events import IGNORED_KINDS

SOURCES = ("minio", "seaweedfs")
GROUP_OUTCOMES = ("posted", "lost")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class RelayMetrics:
    """The relay's counters, every series present from the start (at 0), so that a rate over
    a fresh relay is defined."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, documentation: str, labels: tuple[str, ...] = ("source",)) -> Counter:
            return Counter(name, documentation, labels, registry=self.registry)

        self.requests = counter(
            "ivi_relay_requests", "Webhook calls by store and answer status", ("source", "code")
        )
        self.received = counter("ivi_relay_events_received", "Objects (or bodies without one) the store's webhook sent")
        self.posted = counter("ivi_relay_events_posted", "Events posted to Prefect and taken by it")
        self.dropped = counter("ivi_relay_events_dropped", "Events Prefect refused for good (the reconcile catches up)")
        self.unavailable = counter(
            "ivi_relay_events_unavailable", "Events not posted because Prefect was unavailable (the store retries)"
        )
        self.ignored = counter(
            "ivi_relay_events_ignored", "Objects that start no run, by reason", ("source", "reason")
        )
        # A burst's objects, grouped into one process-objects run each (relay/dispatch.py).
        self.grouping = Gauge(
            "ivi_relay_objects_grouping",
            "Objects of a burst acknowledged and not yet handed to Prefect in a group",
            registry=self.registry,
        )
        self.groups = Counter(
            "ivi_relay_groups", "Groups of a burst's objects: posted, or lost (left to the reconcile)",
            ("outcome",), registry=self.registry,
        )
        self.grouped_objects = Counter(
            "ivi_relay_grouped_objects", "Objects in those groups", ("outcome",), registry=self.registry
        )
        for outcome in GROUP_OUTCOMES:
            self.groups.labels(outcome)
            self.grouped_objects.labels(outcome)
        for source in SOURCES:
            for series in (self.received, self.posted, self.dropped, self.unavailable):
                series.labels(source)
            for kind in IGNORED_KINDS:
                self.ignored.labels(source, kind)

    def group_done(self, size: int, posted: bool) -> None:
        outcome = "posted" if posted else "lost"
        self.groups.labels(outcome).inc()
        self.grouped_objects.labels(outcome).inc(size)

    def render(self) -> bytes:
        """The Prometheus text exposition of every counter."""
        return generate_latest(self.registry)
