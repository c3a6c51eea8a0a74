"""The exporter's metrics, and how one report adds to them.

Every project metric starts with `ivi_`. The counters grow by what each report says; a report
is counted once (metrics/scan.py remembers which it has counted). Fields that other parts of
the pipeline add to the report over time (`powerbi`, `powerbi_posts`, `powerbi_throttled`,
`lake_rows`...) are read with a default, so a report that lacks them counts as zero.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROW_OUTCOMES = {
    "input": "input_rows",
    "exported": "exported_rows",
    "quarantined": "quarantined_rows",
    "duplicate": "duplicate_rows",
}
# Seconds. A file of the samples takes 1-3 s on a warm worker; a large one minutes.
PROCESSING_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# Upload to report: the trigger, the queue of runs waiting for a slot, then the processing.
LATENCY_BUCKETS = (1, 2, 3, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600)
NO_CONTRACT = "none"
EXPORTER_STEPS = ("blocks", "reports", "flow_runs")  # what a scrape does, in order  # a file rejected before its contract was known


def number(report: Mapping[str, object], name: str) -> float:
    """The report's figure `name`, 0 when absent or not a number (never a crash on a report)."""
    value = report.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0.0
    return float(value)


def powerbi_status(report: Mapping[str, object]) -> str | None:
    """pushed / deferred / table_full / skipped, from `powerbi` when the report has it, else
    from the older fields (`powerbi_skipped`, `powerbi_rows`); None when nothing was exported."""
    status = report.get("powerbi")
    if isinstance(status, str) and status:
        return status
    if report.get("powerbi_skipped"):
        return "skipped"
    if number(report, "powerbi_rows") > 0:
        return "pushed"
    return None


class PipelineMetrics:
    """The metrics of what the flow runs did, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.files = Counter("ivi_files", "Files with a report, by final status", ["contract", "status"], registry=r)
        self.rows = Counter(
            "ivi_rows", "Rows of the reported files: input, exported, quarantined, duplicate",
            ["contract", "outcome"], registry=r,
        )
        self.powerbi_rows = Counter("ivi_powerbi_rows", "Rows accepted by Power BI", ["contract"], registry=r)
        self.powerbi_posts = Counter(
            "ivi_powerbi_posts", "POSTs to Power BI (batches where the report has no POST count)",
            ["contract"], registry=r,
        )
        self.powerbi_throttled = Counter(
            "ivi_powerbi_throttled", "Power BI answers 429 (throttled)", ["contract"], registry=r
        )
        self.powerbi_exports = Counter(
            "ivi_powerbi_exports", "Power BI exports by outcome: pushed, deferred, table_full, skipped",
            ["contract", "status"], registry=r,
        )
        self.lake_commits = Counter("ivi_lake_commits", "Delta table commits", ["contract"], registry=r)
        self.lake_rows = Counter("ivi_lake_rows", "Rows appended to the Delta tables", ["contract"], registry=r)
        self.processing = Histogram(
            "ivi_processing_seconds", "Processing time of a file (the report's duration_s)",
            ["contract"], buckets=PROCESSING_BUCKETS, registry=r,
        )
        self.latency = Histogram(
            "ivi_upload_to_report_seconds", "From the raw object's upload to its report's write",
            ["contract"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.unreadable = Counter(
            "ivi_reports_unreadable", "Report objects that are not a JSON object", registry=r
        )
        self.reports_known = Gauge("ivi_reports_known", "Report objects counted so far", registry=r)
        self.errors = Counter(
            "ivi_exporter_errors", "Steps of a scrape that failed: blocks, reports, flow_runs", ["step"], registry=r
        )
        for step in EXPORTER_STEPS:
            self.errors.labels(step)
        self.scan_ok = Gauge("ivi_report_scan_ok", "1 when the last scan of the reports succeeded", registry=r)
        self.scan_seconds = Gauge("ivi_report_scan_seconds", "How long the last scan of the reports took", registry=r)
        self.flow_runs = Gauge(
            "ivi_flow_runs", "process_object runs known to Prefect, by state type", ["state"], registry=r
        )

    def count(self, report: Mapping[str, object], latency_seconds: float | None) -> None:
        """Add one report (and its upload-to-report latency, when known)."""
        contract = str(report.get("contract") or NO_CONTRACT)
        self.files.labels(contract, str(report.get("status") or "unknown")).inc()
        for outcome, field in ROW_OUTCOMES.items():
            self.rows.labels(contract, outcome).inc(number(report, field))
        if "duration_s" in report:
            self.processing.labels(contract).observe(number(report, "duration_s"))
        if latency_seconds is not None:
            self.latency.labels(contract).observe(max(latency_seconds, 0.0))
        self._count_powerbi(contract, report)
        lake_rows = number(report, "lake_rows")
        if lake_rows > 0:
            self.lake_commits.labels(contract).inc()
            self.lake_rows.labels(contract).inc(lake_rows)

    def _count_powerbi(self, contract: str, report: Mapping[str, object]) -> None:
        status = powerbi_status(report)
        if status is None:
            return
        self.powerbi_exports.labels(contract, status).inc()
        self.powerbi_rows.labels(contract).inc(number(report, "powerbi_rows"))
        posts = "powerbi_posts" if "powerbi_posts" in report else "powerbi_batches"
        self.powerbi_posts.labels(contract).inc(number(report, posts))
        self.powerbi_throttled.labels(contract).inc(number(report, "powerbi_throttled"))

    def render(self) -> bytes:
        return generate_latest(self.registry)
