"""How one report adds to the exporter's metrics (metrics/figures.py), without a stack: reports
from before and after the Power BI and Delta fields were added, and reports with bad values."""

from __future__ import annotations

import pytest

from metrics.figures import NO_CONTRACT, PipelineMetrics, powerbi_status
from relay.metrics import SOURCES, RelayMetrics
from relay.store_events import IGNORED_KINDS

# A report as flows/process_object.py writes it today (no `powerbi`, no `lake_*`).
PROCESSED = {
    "status": "processed", "contract": "vendas", "input_rows": 5, "exported_rows": 3,
    "quarantined_rows": 1, "duplicate_rows": 1, "duration_s": 2.5,
    "powerbi_destination": "stand-in", "powerbi_rows": 3, "powerbi_batches": 1,
}
REJECTED = {
    "status": "rejected", "contract": "vendas", "reason": "not a text file", "input_rows": 0,
    "exported_rows": 0, "quarantined_rows": 0, "duplicate_rows": 0, "duration_s": 0.4,
}


def value(figures: PipelineMetrics, name: str, **labels: str) -> float:
    found = figures.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_processed_report_counts_its_file_rows_time_and_power_bi_rows() -> None:
    figures = PipelineMetrics()
    figures.count(PROCESSED, latency_seconds=4.0)
    assert value(figures, "ivi_files_total", contract="vendas", status="processed") == 1
    rows = {o: value(figures, "ivi_rows_total", contract="vendas", outcome=o)
            for o in ("input", "exported", "quarantined", "duplicate")}
    assert rows == {"input": 5, "exported": 3, "quarantined": 1, "duplicate": 1}
    assert value(figures, "ivi_processing_seconds_sum", contract="vendas") == 2.5
    assert value(figures, "ivi_processing_seconds_bucket", contract="vendas", le="3.0") == 1
    assert value(figures, "ivi_processing_seconds_bucket", contract="vendas", le="2.0") == 0
    assert value(figures, "ivi_upload_to_report_seconds_sum", contract="vendas") == 4.0
    assert value(figures, "ivi_powerbi_exports_total", contract="vendas", status="pushed") == 1
    assert value(figures, "ivi_powerbi_rows_total", contract="vendas") == 3
    assert value(figures, "ivi_powerbi_posts_total", contract="vendas") == 1  # the batches, as POSTs
    assert value(figures, "ivi_lake_commits_total", contract="vendas") == 0


def test_a_rejected_report_counts_a_file_and_no_power_bi_export() -> None:
    figures = PipelineMetrics()
    figures.count(REJECTED, latency_seconds=None)
    assert value(figures, "ivi_files_total", contract="vendas", status="rejected") == 1
    assert value(figures, "ivi_processing_seconds_count", contract="vendas") == 1
    assert value(figures, "ivi_upload_to_report_seconds_count", contract="vendas") == 0
    assert figures.registry.get_sample_value("ivi_powerbi_exports_total", {"contract": "vendas", "status": "pushed"}) is None


def test_the_newer_fields_count_when_present() -> None:
    figures = PipelineMetrics()
    deferred = {**PROCESSED, "powerbi": "deferred", "powerbi_rows": 0, "powerbi_posts": 4,
                "powerbi_throttled": 3, "lake_table": "vendas", "lake_version": 7, "lake_rows": 3}
    figures.count(deferred, latency_seconds=None)
    figures.count({**PROCESSED, "lake_rows": 0}, latency_seconds=None)  # nothing appended, no commit
    assert value(figures, "ivi_powerbi_exports_total", contract="vendas", status="deferred") == 1
    assert value(figures, "ivi_powerbi_posts_total", contract="vendas") == 4 + 1  # posts win over batches
    assert value(figures, "ivi_powerbi_throttled_total", contract="vendas") == 3
    assert value(figures, "ivi_lake_commits_total", contract="vendas") == 1
    assert value(figures, "ivi_lake_rows_total", contract="vendas") == 3


@pytest.mark.parametrize(
    ("report", "status"),
    [({"powerbi": "table_full"}, "table_full"), ({"powerbi_skipped": "no destination"}, "skipped"),
     ({"powerbi_rows": 2}, "pushed"), ({"powerbi_rows": 0}, None), ({}, None)],
)
def test_power_bi_status_from_new_and_old_fields(report: dict[str, object], status: str | None) -> None:
    assert powerbi_status(report) == status


def test_bad_values_count_as_zero_and_never_raise() -> None:
    figures = PipelineMetrics()
    figures.count({"status": 3, "input_rows": "many", "exported_rows": -2, "quarantined_rows": float("nan"),
                   "duplicate_rows": True, "duration_s": None, "powerbi": ["x"], "lake_rows": "1"},
                  latency_seconds=-1.0)
    assert value(figures, "ivi_files_total", contract=NO_CONTRACT, status="3") == 1
    for outcome in ("input", "exported", "quarantined", "duplicate"):
        assert value(figures, "ivi_rows_total", contract=NO_CONTRACT, outcome=outcome) == 0
    assert value(figures, "ivi_upload_to_report_seconds_sum", contract=NO_CONTRACT) == 0  # clamped
    assert value(figures, "ivi_lake_commits_total", contract=NO_CONTRACT) == 0


def test_the_relay_series_exist_at_zero_from_the_start() -> None:
    relay = RelayMetrics()
    for source in SOURCES:
        assert relay.registry.get_sample_value("ivi_relay_events_received_total", {"source": source}) == 0
        for kind in IGNORED_KINDS:
            labels = {"source": source, "reason": kind}
            assert relay.registry.get_sample_value("ivi_relay_events_ignored_total", labels) == 0
    assert b"ivi_relay_events_posted_total" in relay.render()
    for outcome in ("posted", "lost"):  # a burst's groups (relay/dispatch.py)
        assert relay.registry.get_sample_value("ivi_relay_groups_total", {"outcome": outcome}) == 0
        assert relay.registry.get_sample_value("ivi_relay_grouped_objects_total", {"outcome": outcome}) == 0
    relay.group_done(3, posted=True)
    assert relay.registry.get_sample_value("ivi_relay_grouped_objects_total", {"outcome": "posted"}) == 3
