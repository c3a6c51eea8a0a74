"""The clean rows read back as Arrow record batches, one at a time: bounded memory.

`process_file` writes the clean rows it exports as an Arrow IPC stream beside the clean CSV
(`processing/write.py`, `ArrowStream`, when the flow asks for it), in their typed values, a
batch per chunk it cleaned. Reading them back costs no parsing: each batch's buffers are
read from the file as they are, and `lake/table.py` casts them to the table's types (polars'
string_view to string, nothing else changes). Reading the clean CSV instead, with pyarrow's
streaming CSV reader, took 0.27 CPU-s per million rows, half of the export's work.

Read, not memory-mapped: a mapped file's pages count in the process' resident memory once
touched, so the peak grows with the file (measured, export alone into a local table: 378 MB
at 1M `vendas` rows, 687 MB at 4M, against 295 and 303 MB read); read, one batch (a chunk of
`process_file`: ~60,000 `vendas` rows, ~6 MB) is in memory at a time, and the copy costs next
to nothing (the file was just written: it is in the page cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc


def arrow_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The stream's record batches in file order, each read when the consumer asks for it."""
    with pa.OSFile(str(path)) as source:
        yield from pyarrow.ipc.open_stream(source)
