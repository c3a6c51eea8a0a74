"""The clean CSV read back as Arrow record batches, with bounded memory.

pyarrow's streaming CSV reader parses one block at a time, in the table's types, and hands
each on as it is parsed. It reads ahead of its consumer by up to ~32 blocks, so the block
size sets the bound: measured on clean `vendas` CSVs of 1M and 4M rows, 8 MB blocks held 113
and 261 MB of Arrow memory (the read-ahead filling up), 1 MB blocks 41 MB for both, with no
more CPU. Batches are therefore small (~12,000 rows); `data_files.py` gathers them into
row groups of a useful size. (polars' `scan_csv(...).collect_batches()` grew from 305 to
376 MB between 1M and 2M rows: it parses ahead of its consumer too.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

BLOCK_BYTES = 1 << 20  # ~1 MB of CSV per batch: ~12,000 `vendas` rows


def csv_batches(path: Path, schema: pa.Schema, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """The clean CSV's rows, a block at a time, its columns typed as `schema` says (an empty
    field is null: the clean CSV writes nulls so, and no clean value is an empty string)."""
    reader = pacsv.open_csv(
        path,
        # one parsing thread: the same CPU as several (0.27 s per million rows), and the
        # export runs beside export-csv and export-powerbi on a worker's few cores
        read_options=pacsv.ReadOptions(block_size=block_bytes, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),  # a clean value may hold a line break
        convert_options=pacsv.ConvertOptions(
            column_types={field.name: field.type for field in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    yield from reader
