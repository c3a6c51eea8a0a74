"""Benchmark of the event path on the embedded stack (a script that prints figures).

1. Upload-to-report latency: small files uploaded one at a time; the time from `put_object`
   returning to the report being readable (median, p95), and what the flow run itself took.
2. Power BI: a 1,000,000-row `vendas` file from upload to its last row in the stand-in, with
   the number of POSTs (the limits allow 100 at best), their rate and any 429s.

It starts a stack of its own (free ports, a temporary data dir) and stops it at the end.
Run: `.venv/bin/python bench/bench_pipeline.py [--latency-files 20] [--powerbi-rows 1000000]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.own_stack import own_stack, percentile  # noqa: E402
from ivi.demo import SAMPLES_DIR  # noqa: E402
from tests.pipeline_support import upload, wait_for_report  # noqa: E402
from tests.powerbi_pipeline_support import (  # noqa: E402
    dataset_state,
    marked_rows,
    most_posts_in_any_window,
    new_marker,
    post_times,
    vendas_csv,
)

SAMPLE = SAMPLES_DIR / "mock.csv"


def measure_latency(settings, files: int) -> None:  # type: ignore[no-untyped-def]
    data = SAMPLE.read_bytes() if SAMPLE.exists() else vendas_csv(10, new_marker())
    contract = "clientes" if SAMPLE.exists() else "vendas"
    latencies, flow_seconds = [], []
    for number in range(files + 1):
        key = f"{contract}/bench/latency-{uuid.uuid4().hex[:8]}.csv"
        started = time.monotonic()
        etag = upload(settings, key, data)
        report = wait_for_report(settings, key, etag, timeout=120)
        if number == 0:
            continue  # the first run warms the engine's caches (blocks, clients)
        latencies.append(time.monotonic() - started)
        flow_seconds.append(float(report.get("duration_s", 0)))
    print(f"upload -> report, {files} files one at a time: median {statistics.median(latencies):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s, min {min(latencies):.2f} s, max {max(latencies):.2f} s; "
          f"inside the flow run: median {statistics.median(flow_seconds):.2f} s")


def measure_powerbi(settings, rows: int) -> None:  # type: ignore[no-untyped-def]
    marker = new_marker()
    data = vendas_csv(rows, marker)
    since = time.time()
    started = time.monotonic()
    etag = upload(settings, f"vendas/bench/powerbi-{marker}.csv", data)
    report = wait_for_report(settings, f"vendas/bench/powerbi-{marker}.csv", etag, timeout=900)
    took = time.monotonic() - started
    times = post_times(settings, since=since)
    arrived = len(marked_rows(settings, marker))
    state = dataset_state(settings)
    print(f"Power BI, {rows:,} rows: report after {took:.1f} s; {report.get('powerbi_batches')} POSTs, "
          f"{arrived:,} rows in the stand-in (report: {report.get('powerbi_rows'):,}); "
          f"POST rate {len(times) / max(times[-1] - times[0], 1e-9):.2f}/s over {times[-1] - times[0]:.1f} s, "
          f"most in any 60 s: {most_posts_in_any_window(times)}; "
          f"stand-in state: {state}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-files", type=int, default=20)
    parser.add_argument("--powerbi-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with own_stack() as settings:
        if args.latency_files:
            measure_latency(settings, args.latency_files)
        if args.powerbi_rows:
            measure_powerbi(settings, args.powerbi_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
