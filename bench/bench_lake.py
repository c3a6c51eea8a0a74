"""Benchmark of the Delta Lake export (issue 15): what it adds to processing a file, its peak
memory, and that the table holds exactly the exported rows. Prints figures; not a test.

- A throw-away SeaweedFS (`weed mini`, as `ivi up` runs it) on free ports, its data in a temp
  dir, is the store; the 1M-row messy `vendas` file of `bench_process.py` is the input.
- "without": a fresh process runs what a `process_object` run would do with the file after
  fetch without the Delta export: `process_file` (validate, clean, write the clean CSV and
  JSON), then export-csv (clean CSV and JSON to the processed bucket). "with": what it does:
  `process_file` also writes the clean rows as Arrow (`arrow=True`, which exists for the
  export only, so "with" pays for it), then export-lake runs beside export-csv, as the flow
  submits them (`flows/export_lake.py`'s task body, `.fn`, no Prefect server). Both import
  the same modules. Interleaved, the order alternating, medians of `--reps`.
- Alone, the Delta export's cost (the sequential worst case) and its peak RSS in a fresh process
  on clean Arrow streams of 250k, 1M, 2M and 4M rows: bounded memory means the peak does not
  grow with them.
- After each run the table's rows of that key are counted against the report's exported rows.
- Small files (the common upload): the CPU seconds of one export of a 50-row clean CSV into a
  table that already has `--commits` commits (a table of its own, in a bucket of its own),
  measured inside one process per export after the first (imports paid), median.

Usage: .venv/bin/python bench/bench_lake.py [--reps 3] [--sizes 250000,1000000,2000000,4000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r"""
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from pydantic import SecretStr
from blocks.objectstore import minio_credentials
from blocks.pipeline import PipelineBuckets
from flows.export_lake import export_lake
from ivi.settings import Settings
from objectstore import store
from processing.contract import load_contract
from processing.run import process_file

job = json.loads(sys.argv[1])
settings = Settings(_env_file=None, s3_port=job["port"], s3_access_key=job["key"], s3_secret_key=SecretStr(job["secret"]))
client = store.minio_client(settings.s3_endpoint, job["key"], job["secret"])
credentials = minio_credentials(settings)
contract = load_contract("vendas")
version = store.find_object(client, "raw", job["raw_key"]) if "raw_key" in job else None
out = {}
started = time.perf_counter()
if job["mode"] == "small":
    buckets = PipelineBuckets(lake_bucket=job["lake_bucket"])
    cpu = []
    for index, raw_key in enumerate(job["raw_keys"]):
        version = store.find_object(client, "raw", raw_key)
        before = time.process_time()
        lake = export_lake.fn(client, buckets, credentials, Path(job["clean"]), contract, version, job["rows"])
        cpu.append(time.process_time() - before)
        assert lake.rows == job["rows"], lake
    out["cpu_each"] = cpu
elif job["mode"] == "lake-only":
    before = time.process_time()
    lake = export_lake.fn(client, PipelineBuckets(), credentials, Path(job["clean"]), contract, version,
                          job["rows"])
    out["export_cpu_s"] = time.process_time() - before
    out.update(lake.as_report())
else:
    report = process_file(Path(job["csv"]), contract, Path(job["out"]), arrow=job["mode"] == "with")
    out["process_s"] = time.perf_counter() - started
    keys = store.OutputKeys.for_key(job["raw_key"])
    def export_csv():
        store.put_file(client, "processed", keys.csv, Path(report.outputs["csv"]), "text/csv")
        store.put_file(client, "processed", keys.json, Path(report.outputs["json"]), "application/json")
    def timed(name, function, *args):
        begun = time.perf_counter()
        try:
            return function(*args)
        finally:
            out[name] = time.perf_counter() - begun
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(timed, "csv_s", export_csv)]
        if job["mode"] == "with":
            futures.append(pool.submit(timed, "lake_s", export_lake.fn, client, PipelineBuckets(), credentials,
                                       Path(report.outputs["arrow"]), contract, version, report.exported_rows))
        results = [future.result() for future in futures]
    out["exported_rows"] = report.exported_rows
    if job["mode"] == "with":
        out["clean_rows"] = report.outputs["arrow"]
        out.update(results[1].as_report())
out["seconds"] = time.perf_counter() - started
out["peak_rss_kb"] = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps(out))
"""


def start_store(base: Path) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    from ivi import seaweed
    from tests.stack_support import isolated_settings

    settings = isolated_settings(base)
    seaweed.write_config(settings, "http://127.0.0.1:9/unused")
    log = (base / "weed.log").open("wb")
    process = subprocess.Popen(seaweed.command(settings), cwd=seaweed.home(settings), stdout=log, stderr=log,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            if seaweed.is_ready(settings):
                break
        except Exception:  # noqa: BLE001 - still starting
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
    seaweed.ensure_buckets(settings)
    return process, {"port": settings.s3_port, "key": settings.s3_access_key,
                     "secret": settings.s3_secret_key.get_secret_value(), "settings": settings}


def run_child(job: dict[str, object]) -> tuple[dict[str, object], float]:
    """One fresh process; its printed result (with its CPU seconds, user + system, which the
    load of a shared machine changes far less than wall time) and its peak RSS (MB): the
    child's own high-water mark (`VmHWM`, of its memory since exec; `ru_maxrss` would start
    from this process' size, which grows with the sized copies made here)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(job)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"child failed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result, int(result["peak_rss_kb"]) / 1024  # type: ignore[call-overload]


def table_rows(store_info: dict[str, object], key: str) -> int:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from lake.storage import s3_storage_options

    settings = store_info["settings"]
    options = s3_storage_options(settings.s3_endpoint, settings.s3_access_key,  # type: ignore[attr-defined]
                                 settings.s3_secret_key.get_secret_value(), settings.s3_region)  # type: ignore[attr-defined]
    table = DeltaTable("s3://lake/vendas", storage_options=options)
    return table.to_pyarrow_dataset().count_rows(filter=pc.field("_source_key") == key)


def sized_copy(clean_rows: Path, rows: int, target: Path) -> int:
    """The clean rows' Arrow stream cut to, or repeated up to, `rows` rows, a batch at a time
    (as `process_file` writes it); how many rows it holds."""
    import pyarrow as pa
    import pyarrow.ipc

    written = 0
    with pa.OSFile(str(clean_rows)) as source, pyarrow.ipc.open_stream(source) as reader, \
            pyarrow.ipc.new_stream(str(target), reader.schema) as out:
        batches = list(reader)
        while written < rows:
            for batch in batches:
                if written >= rows:
                    break
                batch = batch.slice(0, rows - written)
                out.write_batch(batch)
                written += batch.num_rows
    return written


def small_file_cpu(client: object, common: dict[str, object], clean: Path, base: Path,
                   commits: int, measured: int) -> None:
    """CPU seconds of one export of a 50-row file into a table with `commits` commits."""
    from objectstore import store

    small = base / "clean-50.arrow"
    rows = sized_copy(clean, 50, small)
    bucket = "lake-small"
    client.make_bucket(bucket)  # type: ignore[attr-defined]
    keys = [f"vendas/small-{index}.csv" for index in range(commits + measured)]
    for key in keys:
        store.put_file(client, "raw", key, small, "text/csv")  # type: ignore[arg-type]
    job = {**common, "mode": "small", "clean": str(small), "rows": rows, "lake_bucket": bucket}
    run_child({**job, "raw_keys": keys[:commits]})  # the table's history
    result, rss = run_child({**job, "raw_keys": keys[commits:]})
    each = [float(cpu) for cpu in result["cpu_each"]][1:]  # type: ignore[union-attr]
    print(f"\nsmall file ({rows} rows) into a table of {commits} commits: CPU per export median "
          f"{statistics.median(each) * 1000:.0f} ms (min {min(each) * 1000:.0f}, max {max(each) * 1000:.0f}; "
          f"{len(each)} exports after the first); peak RSS {rss:.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    from bench_process import ensure_input

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="250000,1000000,2000000,4000000",
                        help="rows of the clean CSVs export-lake runs alone on")
    parser.add_argument("--commits", type=int, default=100, help="commits of the small-file table")
    parser.add_argument("--small", type=int, default=20, help="small-file exports measured")
    args = parser.parse_args(argv)
    csv_path, truth = ensure_input(1_000_000)
    with tempfile.TemporaryDirectory(prefix="ivi-bench-lake-") as temp:
        base = Path(temp)
        weed, store_info = start_store(base)
        try:
            from objectstore import store

            settings = store_info["settings"]
            client = store.minio_client(settings.s3_endpoint, settings.s3_access_key,  # type: ignore[attr-defined]
                                        settings.s3_secret_key.get_secret_value())  # type: ignore[attr-defined]
            common = {k: store_info[k] for k in ("port", "key", "secret")}
            times: dict[str, list[float]] = {"without": [], "with": []}
            cpu: dict[str, list[float]] = {"without": [], "with": []}
            last: dict[str, object] = {}
            for rep in range(args.reps):
                for mode in (("without", "with") if rep % 2 == 0 else ("with", "without")):
                    raw_key = f"vendas/bench-{rep}-{mode}.csv"
                    store.put_file(client, "raw", raw_key, csv_path, "text/csv")
                    result, rss = run_child({**common, "mode": mode, "csv": str(csv_path), "raw_key": raw_key,
                                             "out": str(base / f"out-{rep}-{mode}")})
                    times[mode].append(float(result["seconds"]))  # type: ignore[arg-type]
                    cpu[mode].append(float(result["cpu_s"]))  # type: ignore[arg-type]
                    lake_s = f", export-lake {result['lake_s']:4.2f} s" if "lake_s" in result else ""
                    line = (f"  rep {rep + 1}: {mode:<8} {result['seconds']:6.2f} s (process_file "
                            f"{result['process_s']:5.2f} s, export-csv {result['csv_s']:4.2f} s{lake_s})  "
                            f"CPU {result['cpu_s']:6.2f} s  peak RSS {rss:6.0f} MB")
                    if mode == "with":
                        rows = table_rows(store_info, raw_key)
                        assert rows == result["exported_rows"] == result["lake_rows"], (rows, result)
                        line += f"  table: {rows:,} rows of the key = exported {result['exported_rows']:,}"
                        last = result
                    print(line, flush=True)
            without, with_lake = statistics.median(times["without"]), statistics.median(times["with"])
            print(f"\nprocess + export-csv:                         {without:.2f} s (median of {args.reps})")
            print(f"process (+ Arrow) + export-csv ∥ export-lake: {with_lake:.2f} s  ratio {with_lake / without:.3f}")
            cpu_without, cpu_with = statistics.median(cpu["without"]), statistics.median(cpu["with"])
            print(f"CPU seconds (user + system): {cpu_without:.2f} s without, {cpu_with:.2f} s with, "
                  f"ratio {cpu_with / cpu_without:.3f}")
            pairs = [w / wo for w, wo in zip(times["with"], times["without"], strict=True)]
            print(f"each repetition's with/without (run back to back, so under about the same load): "
                  f"{', '.join(f'{ratio:.3f}' for ratio in pairs)}; median {statistics.median(pairs):.3f}")
            print(f"ground truth exported rows: {truth['exported_rows']:,}; table: {last['lake_rows']:,}")

            clean = Path(str(last["clean_rows"]))
            print("\nexport-lake alone, fresh process per size (peak RSS must not grow with rows):")
            for rows in (int(size) for size in args.sizes.split(",") if size):
                copy = base / f"clean-{rows}.arrow"
                rows = sized_copy(clean, rows, copy)
                raw_key = f"vendas/bench-alone-{rows}.csv"
                store.put_file(client, "raw", raw_key, csv_path, "text/csv")
                result, rss = run_child({**common, "mode": "lake-only", "clean": str(copy), "rows": rows,
                                         "raw_key": raw_key})
                rows_in_table = table_rows(store_info, raw_key)
                assert rows_in_table == rows == result["lake_rows"], (rows_in_table, rows, result)
                print(f"  {rows:>9,} rows: {result['seconds']:6.2f} s  CPU {result['cpu_s']:5.2f} s "
                      f"(the export's own {result['export_cpu_s']:4.2f} s)  peak RSS {rss:6.0f} MB  "
                      f"table: {rows_in_table:,} rows of the key", flush=True)
            small_file_cpu(client, common, clean, base, args.commits, args.small)
        finally:
            os.killpg(weed.pid, 15)
            weed.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
