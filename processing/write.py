"""Writers of a file's outputs, appended chunk by chunk and published all at once.

Outputs go to temporary names beside their final ones and are renamed at the end, so a file
rejected half way (or a crash) leaves no half-written output behind.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import polars as pl

if TYPE_CHECKING:
    import pyarrow as pa

JSON_SLICE_ROWS = 8192


def iso_datetimes(frame: pl.DataFrame) -> pl.DataFrame:
    """Datetime columns as ISO 8601 text: `2024-01-05T10:00:00` (naive) or `...Z` (UTC), the
    fraction only when there is one; polars' own writers differ between CSV and JSON. A frame
    without datetime columns is returned as it is."""
    zones = {
        name: dtype.time_zone
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    }
    if not zones:
        return frame
    return frame.with_columns(
        pl.col(name).dt.to_string("%Y-%m-%dT%H:%M:%S%.f" + ("Z" if zone else ""))
        for name, zone in zones.items()
    )


class ArrowStream:
    """The clean rows as an Arrow IPC stream, appended a chunk at a time, for the Delta export
    (`lake/source.py` reads it back): their typed values as the engine made them, so the
    export neither parses the clean CSV again (half of its CPU) nor can read a value
    differently. One schema for the whole stream, the first chunk's: every chunk has the
    contract's dtypes, and a chunk that did not (a column typed Null) is cast to it.

    Written to a native file (`pyarrow.OSFile`), not a Python one: the IPC writer's many small
    writes then never take the GIL, which the engine's thread needs. pyarrow is imported only
    when the stream is asked for: a process that writes no Arrow (`ivi process`) never loads it
    (~20 MB, processing/records.py)."""

    def __init__(self, path: Path) -> None:
        import pyarrow

        self.file = pyarrow.OSFile(str(path), "wb")
        self._schema: pa.Schema | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        import pyarrow.ipc

        # string_view, polars' own layout: handed over without a copy. The default, large_string,
        # copies every string in polars' threads: +0.4 CPU-s per million rows in a fresh process
        table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
        if self._writer is None:
            self._schema = table.schema
            self._writer = pyarrow.ipc.new_stream(self.file, table.schema)
        elif not table.schema.equals(self._schema):
            table = table.cast(self._schema)
        self._writer.write_table(table)

    def close(self) -> None:
        """End the stream (its end-of-stream marker); the file itself is closed by its owner."""
        if self._writer is not None:
            self._writer.close()


class OutputFiles:
    """`<stem>.csv`, `<stem>.json` and `<stem>.rejected.csv` in one directory, and, when
    `arrow` is asked for, `<stem>.arrow`: the clean rows as an Arrow IPC stream, which only the
    Delta export reads (the flow asks for it, `ivi process` does not pay for it)."""

    def __init__(self, out_dir: Path, stem: str, columns: list[str], arrow: bool = False) -> None:
        self.columns = columns
        out_dir.mkdir(parents=True, exist_ok=True)
        self.final = {
            "csv": out_dir / f"{stem}.csv",
            "json": out_dir / f"{stem}.json",
            "rejected": out_dir / f"{stem}.rejected.csv",
        }
        if arrow:
            self.final["arrow"] = out_dir / f"{stem}.arrow"
        self._temp = {kind: path.with_name(f".{path.name}.part") for kind, path in self.final.items()}
        self._handles: dict[str, BinaryIO | pa.NativeFile] = {}
        self._arrow = ArrowStream(self._temp["arrow"]) if arrow else None
        if self._arrow is not None:
            self._handles["arrow"] = self._arrow.file
        self._rows = {"csv": 0, "rejected": 0}
        self._json_rows = 0
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None

    def _handle(self, kind: str) -> BinaryIO:
        """The Python file of `kind` (the Arrow stream's native file is opened with it)."""
        if kind not in self._handles:
            self._handles[kind] = self._temp[kind].open("w+b")
        return cast(BinaryIO, self._handles[kind])

    def write_chunk_in_background(self, clean: pl.DataFrame, rejected: pl.DataFrame) -> None:
        """Write a chunk in a thread of its own while the caller cleans the next one (polars'
        writers release the GIL). The previous chunk's write is waited for first: the order
        is kept and at most one chunk is being written."""
        if self._writing is not None:
            self._writing.result()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivi-write")
        self._writing = self._writer.submit(self.write_chunk, clean, rejected)

    def finish_writing(self) -> None:
        """Wait for the last background write (its error is raised here) and end the thread."""
        writing, writer = self._writing, self._writer
        self._writing = self._writer = None
        try:
            if writing is not None:
                writing.result()
        finally:
            if writer is not None:
                writer.shutdown()

    def write_chunk(self, clean: pl.DataFrame, rejected: pl.DataFrame) -> None:
        self.write_clean(clean)
        self.write_rejected(rejected)

    def write_clean(self, frame: pl.DataFrame) -> None:
        if self._arrow is not None:
            self._arrow.write(frame)
        frame = iso_datetimes(frame)
        csv = self._handle("csv")
        frame.write_csv(csv, include_header=self._rows["csv"] == 0 and csv.tell() == 0)
        self._rows["csv"] += frame.height
        # in slices: polars serialises a whole call's JSON in memory (~2.5x the rows' size)
        for offset in range(0, frame.height, JSON_SLICE_ROWS):
            self._append_to_json_array(frame.slice(offset, JSON_SLICE_ROWS))

    def _append_to_json_array(self, frame: pl.DataFrame) -> None:
        """One JSON array across chunks, written straight into the file: a chunk's array
        (`[...]`, ~2.5x the chunk's size) starts where the previous one's `]` was, and its
        `[` becomes a `,`. A copy of it in memory cost more RSS than any other buffer."""
        json = self._handle("json")
        start = json.seek(-1, os.SEEK_END) if self._json_rows else json.tell()
        frame.write_json(json)
        end = json.tell()
        json.seek(start)
        json.write(b"," if self._json_rows else b"[")
        json.seek(end)
        self._json_rows += frame.height

    def write_rejected(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        handle = self._handle("rejected")
        frame.write_csv(handle, include_header=self._rows["rejected"] == 0)
        self._rows["rejected"] += frame.height

    def publish(self) -> dict[str, str]:
        """Close and rename into place; returns the paths written, by kind."""
        self.finish_writing()
        if "csv" not in self._handles:  # no row at all: the CSV still has its header
            self.write_clean(pl.DataFrame(schema={name: pl.String for name in self.columns}))
        self._handle("json").write(b"\n" if self._json_rows else b"[]\n")
        if self._arrow is not None:
            self._arrow.close()
        for handle in self._handles.values():
            handle.close()
        written = {}
        for kind, temp in self._temp.items():
            if kind in self._handles:
                os.replace(temp, self.final[kind])
                written[kind] = str(self.final[kind])
        return written

    def discard(self) -> None:
        """Remove the partial outputs, whatever closing them says: on a full disk, closing
        flushes what is buffered and fails again, and that must not keep the next handle
        open or a partial file on the disk."""
        try:
            self.finish_writing()  # a write still running must not race the closing
        except Exception:  # noqa: BLE001 - its error is the one being handled, or moot
            pass
        for handle in self._handles.values():
            try:
                handle.close()
            except OSError:
                pass
        for temp in self._temp.values():
            temp.unlink(missing_ok=True)
