"""`ivi demo` (what `make demo` runs): the main job on the embedded stack, end to end.

Starts the stack, uploads the prototype's sample files and a generated messy `vendas` file
to the raw bucket, waits for their reports (the event path: store webhook -> relay ->
Prefect trigger -> worker -> process_object), and prints what happened and where to look.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ivi.settings import ENV_FILE, PROJECT_DIR, Settings
from ivi.stack import metrics_urls

# The prototype's two sample files, kept in the repository (the tests read them too).
SAMPLES_DIR = PROJECT_DIR / "samples"
DEMO_ROWS = 50_000
WAIT_SECONDS = 180.0


def _demo_files(work: Path) -> dict[str, Path]:
    """Object key in the raw bucket -> local file."""
    files: dict[str, Path] = {}
    for name in ("mock.csv", "mock_10000_linhas.csv"):
        files[f"clientes/{name}"] = SAMPLES_DIR / name
    messy = work / "vendas_demo_messy.csv"
    subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench" / "generate_messy.py"), "--contract", "vendas",
         "--rows", str(DEMO_ROWS), "--out", str(messy), "--encoding", "cp1252", "--delimiter", ";"],
        check=True, stdout=subprocess.DEVNULL,
    )
    files["vendas/vendas_demo_messy.csv"] = messy
    return files


def run_demo(settings: Settings | None = None) -> int:
    from objectstore.store import OutputKeys, minio_client, read_report
    from ivi import stack

    rc = stack.up(settings)
    if rc != 0:
        return rc
    settings = settings or Settings()  # `up` may just have written .env
    client = minio_client(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value()
    )
    with tempfile.TemporaryDirectory(prefix="ivi-demo-") as temp:
        files = _demo_files(Path(temp))
        uploaded_at = {}
        for key, path in files.items():
            client.fput_object(settings.raw_bucket, key, str(path), content_type="text/csv")
            uploaded_at[key] = time.monotonic()
            print(f"uploaded {path.name} -> s3://{settings.raw_bucket}/{key}")
    reports: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while len(reports) < len(uploaded_at) and time.monotonic() < deadline:
        for key in uploaded_at:
            if key not in reports:
                report = read_report(client, settings.processed_bucket, OutputKeys.for_key(key).report)
                if report is not None:
                    report["latency_s"] = round(time.monotonic() - uploaded_at[key], 1)
                    reports[key] = report
        time.sleep(0.5)
    print()
    print(f"{'object':42} {'status':9} {'input':>8} {'exported':>9} {'quarant.':>9} {'dupl.':>6} {'secs':>5}")
    for key in uploaded_at:
        r = reports.get(key)
        if r is None:
            print(f"{key:42} {'waiting':9} (no report after {WAIT_SECONDS:.0f} s: see `ivi status`)")
            continue
        print(f"{key:42} {r['status']!s:9} {r['input_rows']:>8} {r['exported_rows']:>9} "
              f"{r['quarantined_rows']:>9} {r['duplicate_rows']:>6} {r['latency_s']:>5}")
    print()
    print(f"clean outputs:   s3://{settings.processed_bucket}/<key>.csv and .json  ({settings.s3_endpoint})")
    print(f"quarantine:      s3://{settings.quarantine_bucket}/<key>.rejected.csv")
    print(f"reports:         s3://{settings.processed_bucket}/_reports/<key>.json")
    print(f"Delta tables:    s3://{settings.lake_bucket}/<contract>  (`ivi lake show vendas`)")
    print(f"Prefect UI:      {settings.prefect_ui_url}")
    print(f"console:         {settings.console_url}  (upload files, follow them, replay quarantines)")
    print(f"  sign in as:    {settings.console_user}, with the password IVI_CONSOLE_PASSWORD of "
          f"{ENV_FILE} (`grep IVI_CONSOLE_PASSWORD {ENV_FILE}`)")
    print(f"metrics:         {'  '.join(metrics_urls(settings))}  (bearer IVI_METRICS_TOKEN of .env)")
    print("the stack keeps running: `ivi down` (or `make down`) stops it")
    print(json.dumps({"reports": len(reports), "expected": len(uploaded_at)}))
    return 0 if len(reports) == len(uploaded_at) else 1
