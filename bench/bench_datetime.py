"""What a datetime column costs the engine (`make bench` has none): the typed step of one
column of 1M values, for a `date` column as the bench's `data_venda`, and `datetime` columns
with the default set and with one `format`. Prints figures; it is not a test.

Usage: .venv/bin/python bench/bench_datetime.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processing.clean import column_cleaning, run_steps  # noqa: E402
from processing.contract import ColumnSpec  # noqa: E402


def timed(spec: ColumnSpec, raw: pl.Series, reps: int = 5) -> tuple[float, int]:
    cleaning = column_cleaning(spec)
    times, nulls = [], 0
    for _ in range(reps):
        started = time.perf_counter()
        values = run_steps(raw.to_frame(spec.name), [cleaning.text_steps])
        nulls = run_steps(values, [cleaning.typed_steps])[spec.name].null_count()
        times.append(time.perf_counter() - started)
    return statistics.median(times), nulls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    rng = random.Random(1)
    start = datetime(2016, 1, 1)
    moments = [start + timedelta(seconds=rng.randint(0, 10**8)) for _ in range(rows)]
    cases = {
        "date, no format (DD/MM/YYYY)": (ColumnSpec("v", "date"), [f"{m:%d/%m/%Y}" for m in moments]),
        "datetime, default set (ISO T)": (ColumnSpec("v", "datetime"), [m.isoformat() for m in moments]),
        "datetime, default set (DD/MM/YYYY HH:MM)": (
            ColumnSpec("v", "datetime"), [f"{m:%d/%m/%Y %H:%M}" for m in moments]),
        "datetime, format %m/%d/%Y %H:%M": (
            ColumnSpec("v", "datetime", format=("%m/%d/%Y %H:%M",)),
            [f"{m.month}/{m.day}/{m.year} {m.hour}:{m.minute:02d}" for m in moments]),
        "datetime, format + timezone": (
            ColumnSpec("v", "datetime", format=("%m/%d/%Y %H:%M",), timezone="America/Sao_Paulo"),
            [f"{m.month}/{m.day}/{m.year} {m.hour}:{m.minute:02d}" for m in moments]),
    }
    print(f"{rows:,} values per column, median of 5 (text and typed steps of one column)")
    for label, (spec, values) in cases.items():
        seconds, nulls = timed(spec, pl.Series("v", values))
        print(f"  {label:<45} {seconds * 1000:8.1f} ms   unread: {nulls}")


if __name__ == "__main__":
    main()
