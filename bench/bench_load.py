"""Load benchmark (a script that prints figures): a batch of uploads at once, at several run
concurrencies.

For each concurrency N (the work pool's concurrency limit: at most N flow runs at a time) it
uploads a batch of files within seconds (the mix of tests/test_load.py: both contracts, tiny
clean files, messy files with invalid rows and duplicates, a few with over 20,000 rows) and
prints, per level: files, files per minute (first upload to last report), the median, p95 and
max upload-to-report latency (from `put_object` returning to the report being listed, as in
bench/bench_pipeline.py), the most Power BI POSTs one dataset took in any 60 s, and whether
the result was right (one run did the work per file, the stand-in's rows exact, nothing
crashed).

It starts a stack of its own (free ports, a temporary data dir) and stops it at the end.
Each level starts with the stand-in's tables emptied (its admin API, as Power BI's "delete
rows" would): the default levels push ~250,000 rows a dataset in all, and a table that holds
250,000 rows takes only 120 POSTs an hour, so the third level's pushes were deferred to the
catch-up (measured: 4,336 and 2,729 rows not yet there at its end). A level's line names any
file whose push was not `pushed`.
Run: `.venv/bin/python bench/bench_load.py [--files 200] [--levels 1,2,4] [--timeout 1200]`
or `make bench-load`. `--levels` takes `0` for "no limit" (what `ivi up` configures).

Under each level's line it prints the CPU seconds each service of the stack spent per file
(the flow runs are the pre-warmed engine's children): on shared cores the wall clock moves
with whatever else runs, the CPU a file costs less (though it moved by 40% between runs of
the same code: docs/shared-state.md). It also prints a fixed loop's CPU seconds, measured
in the same run, as a baseline, and how busy the whole machine was meanwhile: the stack's
share, other work's, and what the hypervisor stole (a burst held back by other work uses
fewer of our CPU seconds a minute than the cores could give).

Measured on 2 cores with the machine to itself (session 11: the relay groups a burst's
objects, up to 16 per process-objects run), PostgreSQL server, the Delta export on, 200 files
(~170,000 rows), uploads done in about 1 s (docs/shared-state.md has the history):

    concurrency files upload s files/min median s   p95 s   max s POSTs/60s  result
           none   200      1.0     135.9     45.1    83.5    87.7        80  ok
                CPU s per file: prefect-server 0.294, engine 0.245, seaweedfs 0.070,
                postgres 0.053, worker 0.015, powerbi-standin 0.014; total 0.695
                cores busy on average over the level's 105 s: 1.41 of 2 (1.32 the
                stack's, 0.09 other work), 0.00 stolen by the hypervisor

One run per file (session 10, before the grouping) made 70.6 files/min at 1.48 CPU s a file:
a flow run with no work in it costs 0.7-1.0 CPU s. Power BI is not the limit (80 POSTs a
minute against 119 allowed). Without a worker limit, 200 runs at once kept the server
answering 503 for minutes: hence the embedded worker's `--limit` (ivi/prefect_stack.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.own_stack import (  # noqa: E402
    cpu_seconds_by_service,
    machine_cpu_seconds,
    own_stack,
    percentile,
    reference_cpu_seconds,
)
from blocks.powerbi_setup import standin_dataset_id  # noqa: E402
from ivi.settings import Settings  # noqa: E402
from powerbi.push import PUSHED  # noqa: E402
from tests.load_support import (  # noqa: E402
    CONTRACTS,
    batch_post_times,
    build_batch,
    never_started,
    quiet_datasets,
    read_reports,
    repeated_rows,
    rows_since,
    runs_that_ran,
    upload_batch_and_wait,
)
from tests.pipeline_support import FINAL_STATES  # noqa: E402
from tests.powerbi_pipeline_support import most_posts_in_any_window, standin  # noqa: E402
from tests.stack_support import prefect_request  # noqa: E402

HEADER = (
    f"{'concurrency':>11} {'files':>5} {'upload s':>8} {'files/min':>9} {'median s':>8} "
    f"{'p95 s':>7} {'max s':>7} {'POSTs/60s':>9}  result"
)


def set_pool_concurrency(settings: Settings, limit: int | None) -> None:
    """At most `limit` runs of the pool at a time (None: no limit)."""
    prefect_request(
        "PATCH", f"{settings.prefect_api_url}/work_pools/{settings.work_pool}",
        json={"concurrency_limit": limit}, timeout=30,
    )


def empty_datasets(settings: Settings) -> None:
    """Start a level with empty tables, below the 250,000 rows that cut a dataset to 120
    POSTs an hour (earlier levels' rows would otherwise defer this level's pushes)."""
    for contract in CONTRACTS:
        standin(settings, "DELETE", f"/_standin/datasets/{standin_dataset_id(contract)}/rows")


def run_level(settings: Settings, concurrency: int | None, files_count: int, timeout: float) -> str:
    set_pool_concurrency(settings, concurrency)
    prefix = f"bench-load-{uuid.uuid4().hex[:8]}"
    files = build_batch(prefix, files_count)
    keys = [f.key for f in files]
    empty_datasets(settings)
    marks = quiet_datasets(settings, timeout=300)
    batch = upload_batch_and_wait(settings, prefix, files, timeout)
    uploaded, upload_seconds, missing, runs = batch.uploaded, batch.upload_seconds, batch.missing, batch.runs
    watcher, began = batch.watcher, batch.began
    done = [key for key in keys if key not in missing]
    latencies = [watcher.seen_at(key) - uploaded[key].done for key in done]
    span = max((watcher.seen_at(key) for key in done), default=began) - began
    posts_peak = max(most_posts_in_any_window(batch_post_times(settings, marks[c])) for c in CONTRACTS)

    problems = [f"{len(missing)} reports missing after {timeout:.0f} s"] if missing else []
    reports = read_reports(settings, done)
    flat = [run for found in runs.values() for run in found]
    not_started = sum(len(never_started(found)) for found in runs.values())
    if not_started:
        problems.append(f"{not_started} runs never started (taken up again by the reconcile)")
    ran = [run for run in flat if run["run_count"] > 0]
    for state in ("CRASHED", "FAILED", "CANCELLED"):
        if ended := [run for run in ran if run["state_type"] == state]:
            why = sorted({(run["state"] or {}).get("message", "")[:120] for run in ended})
            problems.append(f"{len(ended)} runs {state} after starting: {why}")
    if stuck := sum(run["state_type"] not in FINAL_STATES for run in flat):
        problems.append(f"{stuck} runs not finished")
    twice = [key for key in done if len(runs_that_ran(runs[key])) != 1]
    if twice:
        problems.append(f"{len(twice)} files without exactly one run that did the work")
    wrong = [f.key for f in files
             if f.key in reports and (reports[f.key] or {}).get("exported_rows") != f.exported_rows]
    if wrong:
        problems.append(f"{len(wrong)} reports with wrong counts")
    if no_ops := len(ran) - sum(len(runs_that_ran(found)) for found in runs.values()):
        did_work = {run["id"] for found in runs.values() for run in runs_that_ran(found)}
        creators = Counter(
            ((run.get("created_by") or {}).get("display_value") or "the API") for run in ran if run["id"] not in did_work
        )
        problems.append(f"{no_ops} no-op runs (found the version already processed; made by "
                        + ", ".join(f"{name} {count}" for name, count in creators.most_common()) + ")")
    pushes = Counter(str((reports[key] or {}).get("powerbi")) for key in done if key in reports)
    if not_pushed := {status: count for status, count in pushes.items() if status != PUSHED}:
        problems.append("Power BI pushes not done: " + ", ".join(f"{n} {status}" for status, n in not_pushed.items()))
    for contract in CONTRACTS:
        rows = rows_since(settings, marks[contract])
        expected = sum(f.exported_rows for f in files if f.contract == contract)
        if len(rows) != expected or repeated_rows(rows):
            problems.append(f"{contract}: {len(rows):,} rows in the stand-in, {expected:,} expected")
    label = str(concurrency) if concurrency else "none"
    rate = len(done) / span * 60 if span > 0 else 0.0
    if not latencies:
        return f"{label:>11} {len(files):>5} {upload_seconds:>8.1f}  no report arrived; {'; '.join(problems)}"
    return (
        f"{label:>11} {len(files):>5} {upload_seconds:>8.1f} {rate:>9.1f} {statistics.median(latencies):>8.1f} "
        f"{percentile(latencies, 0.95):>7.1f} {max(latencies):>7.1f} {posts_peak:>9}  "
        f"{'; '.join(problems) or 'ok'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="files per level")
    parser.add_argument("--levels", default="1,2,4", help="concurrency limits to try; 0 = none")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait per level")
    args = parser.parse_args()
    levels = [int(level) or None for level in args.levels.split(",")]
    with own_stack() as settings:
        print(HEADER, flush=True)
        for concurrency in levels:
            reference = reference_cpu_seconds()
            before, machine_before, started = cpu_seconds_by_service(settings), machine_cpu_seconds(), time.monotonic()
            print(run_level(settings, concurrency, args.files, args.timeout), flush=True)
            after, machine_after, wall = cpu_seconds_by_service(settings), machine_cpu_seconds(), time.monotonic() - started
            reference = (reference + reference_cpu_seconds()) / 2
            used = {name: after[name] - before.get(name, 0.0) for name in after}
            total = sum(used.values()) / args.files
            print("            CPU s per file: " + ", ".join(
                f"{name} {seconds / args.files:.3f}" for name, seconds in sorted(used.items(), key=lambda i: -i[1])
            ) + f"; total {total:.3f}", flush=True)
            print(f"            reference loop (same run, before and after): {reference:.3f} CPU s; "
                  f"a file costs {total / reference:.1f} loops", flush=True)
            ours = sum(used.values()) / wall
            busy = (machine_after["busy"] - machine_before["busy"]) / wall
            steal = (machine_after["steal"] - machine_before["steal"]) / wall
            print(f"            cores busy on average over the level's {wall:.0f} s: {busy:.2f} of "
                  f"{psutil.cpu_count()} ({ours:.2f} the stack's, {max(busy - ours, 0.0):.2f} other work), "
                  f"{steal:.2f} stolen by the hypervisor", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
