"""The floor of the benchmark: read the CSV with pyarrow and write it back as CSV and NDJSON.

No cleaning, no validation, no duplicate detection: the least work any tool doing this job must
do (decode, parse, write two formats). `bench_process.py` reports the other tools as a ratio to
this, measured in the same run, so that the machine's load cancels out.

Usage: python bench/floor_pyarrow.py FILE OUT_DIR [--encoding cp1252] [--delimiter ';']
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl
import pyarrow.csv as pacsv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("out_dir")
    parser.add_argument("--encoding", default="cp1252")
    parser.add_argument("--delimiter", default=";")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pacsv.read_csv(
        args.file,
        read_options=pacsv.ReadOptions(encoding=args.encoding, block_size=16 << 20),
        parse_options=pacsv.ParseOptions(
            delimiter=args.delimiter, newlines_in_values=True,
            invalid_row_handler=lambda row: "skip",  # wrong field counts: dropped, not reported
        ),
    )
    stem = Path(args.file).stem
    pacsv.write_csv(table, out / f"{stem}.csv")
    # pyarrow has no JSON writer; polars takes the Arrow table without copying.
    pl.from_arrow(table).write_ndjson(out / f"{stem}.ndjson")  # type: ignore[union-attr]
    print(f"{table.num_rows} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
