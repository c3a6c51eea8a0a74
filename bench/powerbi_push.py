"""How fast rows reach the Power BI stand-in: encoding alone, then the whole push over HTTP.

Starts the stand-in as its own process (as `ivi up` would) on a free port with a temporary
SQLite file, registers a dataset with the `vendas` contract's Power BI columns, and pushes N
typed rows through `rows_to_json_batches` and `post_batch`, one batch after the other. Prints
one JSON line: rows, POSTs, 429s seen, seconds for encoding alone and for the whole push.

    .venv/bin/python bench/powerbi_push.py --rows 1000000

The limits allow 100 POSTs of 10,000 rows for 1,000,000 rows, and 120 POSTs a minute, so the
fewest POSTs is 100 and none of them needs to wait: a 429 here would be the client's fault.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blocks.powerbi import PowerBIStreamingDataset  # noqa: E402
from powerbi.push import PostStats, post_batch, rows_to_json_batches  # noqa: E402
from processing.contract import load_contract  # noqa: E402

UFS = ["SP", "RJ", "MG", "BA", "PR", "RS", "PE", "CE"]


def typed_rows(count: int) -> pl.DataFrame:
    """`vendas` rows as the processing core hands them over: typed, clean."""
    ids = pl.int_range(0, count, eager=True)
    start = date(2024, 1, 1)
    return pl.DataFrame(
        {
            "id_venda": ids,
            "data_venda": [start + timedelta(days=i % 700) for i in range(count)],
            "cliente": [f"Cliente {i % 5000}" for i in range(count)],
            "produto": [f"Produto {i % 300}" for i in range(count)],
            "categoria": [f"Categoria {i % 12}" for i in range(count)],
            "quantidade": (ids % 9) + 1,
            "preco_unitario": (ids % 1000) / 10 + 0.99,
        }
    ).with_columns(
        (pl.col("quantidade") * pl.col("preco_unitario")).round(2).alias("valor_total"),
        pl.Series("uf", [UFS[i % len(UFS)] for i in range(count)]),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_standin(db: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "powerbi_standin", "--port", str(port), "--db", str(db)],
        cwd=REPO,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/_standin/datasets", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the stand-in did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    contract = load_contract("vendas")
    columns = {column.name: column.powerbi_type for column in contract.columns}
    frame = typed_rows(args.rows)

    started = time.perf_counter()
    encoded = sum(batch.row_count for batch in rows_to_json_batches(frame, columns))
    encode_seconds = time.perf_counter() - started
    assert encoded == args.rows

    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        process = start_standin(Path(scratch) / "standin.sqlite", port)
        try:
            base = f"http://127.0.0.1:{port}"
            dataset_id, key = str(uuid.uuid4()), uuid.uuid4().hex
            requests.post(
                f"{base}/_standin/datasets",
                json={
                    "id": dataset_id,
                    "key": key,
                    "table": contract.powerbi_table,
                    "columns": [{"name": n, "dataType": t} for n, t in columns.items()],
                },
                timeout=10,
            ).raise_for_status()
            from pydantic import SecretStr

            block = PowerBIStreamingDataset(
                push_url=SecretStr(f"{base}/beta/bench/datasets/{dataset_id}/rows?key={key}")
            )
            stats = PostStats()
            started = time.perf_counter()
            posts = 0
            with requests.Session() as session:
                for batch in rows_to_json_batches(
                    frame, columns, max_bytes=block.max_batch_bytes()
                ):
                    post_batch(block, batch, session, stats=stats)
                    posts += 1
            push_seconds = time.perf_counter() - started
            stored = requests.get(
                f"{base}/_standin/datasets/{dataset_id}/rows", params={"limit": 0}, timeout=30
            ).json()["count"]
        finally:
            process.terminate()
            process.wait(timeout=10)

    result: dict[str, Any] = {
        "rows": args.rows,
        "stored": stored,
        "posts": posts,
        "throttled_429": stats.throttled,
        "retries": stats.failures,
        "encode_seconds": round(encode_seconds, 2),
        "push_seconds": round(push_seconds, 2),
        "rows_per_second": round(args.rows / push_seconds),
    }
    print(json.dumps(result))
    return 0 if stored == args.rows and stats.throttled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
