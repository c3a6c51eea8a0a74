"""The exporter behind `GET /metrics`: on each scrape, the reports not counted yet, and the
process_object runs Prefect knows by state (the runs that crashed wrote no report).

The store client is built from the blocks the setup step saved, on the first scrape that
finds them (the exporter may start before the setup step has run); until then a scrape
answers with `ivi_report_scan_ok 0`.
"""

from __future__ import annotations

import threading

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect_aws import MinIOCredentials

from blocks.objectstore import MINIO_CREDENTIALS_BLOCK, store_client
from blocks.pipeline import load_buckets
from metrics.figures import PipelineMetrics
from metrics.scan import ReportScanner, guarded

FLOW_NAME = "process_object"


def scanner_from_blocks(figures: PipelineMetrics) -> ReportScanner:
    """A scanner of the processed bucket the blocks name, with the flows' store credentials."""
    client = store_client(MinIOCredentials.load(MINIO_CREDENTIALS_BLOCK))
    return ReportScanner(client, load_buckets().processed_bucket, figures)


def count_flow_runs(figures: PipelineMetrics) -> None:
    """`ivi_flow_runs{state}`: process_object runs by state type, as Prefect counts them."""
    flows = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
    with get_client(sync_client=True) as client:
        for state in StateType:
            runs = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state])))
            figures.flow_runs.labels(state.value).set(client.count_flow_runs(flow_filter=flows, flow_run_filter=runs))


class Exporter:
    """Figures brought up to date by each scrape, one scrape at a time."""

    def __init__(self, figures: PipelineMetrics | None = None, scanner: ReportScanner | None = None) -> None:
        self.figures = figures or PipelineMetrics()
        self.scanner = scanner
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            if self.scanner is None:
                guarded(self.figures, "blocks", self._connect)
            scanned = self.scanner is not None and guarded(self.figures, "reports", self.scanner.scan)
            self.figures.scan_ok.set(1 if scanned else 0)
            guarded(self.figures, "flow_runs", lambda: count_flow_runs(self.figures))

    def _connect(self) -> None:
        self.scanner = scanner_from_blocks(self.figures)

    def render(self) -> bytes:
        """Refresh, then the Prometheus text exposition."""
        self.refresh()
        return self.figures.render()
