"""Parsing one chunk of CSV records into a frame of raw strings with their line numbers.

pyarrow's CSV reader does the field parsing (it is the floor's reader, so parsing costs what
the floor pays); its invalid-row handler tells us which records have the wrong number of
fields. Line numbers come from a vectorised scan of the chunk's line breaks and quotes. When
the two disagree (a quote in the middle of an unquoted field, which parsers read
differently), the chunk is parsed again with the `csv` module, which is slower but tells the
line of every record itself.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from processing.source import line_breaks, quotes_follow_rfc4180, record_ends

LINE = "_line"


@dataclass(frozen=True)
class Layout:
    """Where the contract's columns are in the file's records."""

    delimiter: str
    field_count: int
    columns: dict[int, str]  # field index -> contract column name


@dataclass
class RaggedRow:
    """A record with the wrong number of fields: kept whole, as text, for quarantine."""

    line: int
    fields: int
    text: str


@dataclass
class ParsedChunk:
    frame: pl.DataFrame  # contract columns (raw strings) and `_line`
    ragged: list[RaggedRow]


def parse_chunk(data: bytes, first_line: int, layout: Layout) -> ParsedChunk:
    """Raw string values of the contract columns of every record in `data`."""
    if not quotes_follow_rfc4180(data, layout.delimiter):
        # line numbers from quote parity would be wrong, even where the record count agrees
        return _parse_with_csv_module(data, first_line, layout)
    invalid: list[tuple[int, int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    field_names = [f"f{i}" for i in range(layout.field_count)]
    wanted = {f"f{i}": name for i, name in layout.columns.items()}
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=field_names, block_size=len(data) + 1
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter,
                newlines_in_values=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in wanted},
                include_columns=list(wanted),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OverflowError):
        return _parse_with_csv_module(data, first_line, layout)
    breaks = line_breaks(data)
    starts, empty = _record_starts(data, breaks)
    lines = first_line + np.searchsorted(breaks, starts)
    keep = ~empty
    nonempty = np.flatnonzero(keep)  # pyarrow numbers records without the empty lines
    ragged: list[RaggedRow] = []
    for number, fields, text in invalid:
        if number is None or not 1 <= number <= len(nonempty):
            return _parse_with_csv_module(data, first_line, layout)
        index = int(nonempty[number - 1])
        keep[index] = False
        if text.strip():
            ragged.append(RaggedRow(line=int(lines[index]), fields=fields, text=text))
    if int(keep.sum()) != table.num_rows:
        return _parse_with_csv_module(data, first_line, layout)
    frame = pl.from_arrow(table.rename_columns([wanted[n] for n in table.column_names]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.Series(LINE, lines[keep], dtype=pl.Int64))
    return ParsedChunk(frame=frame, ragged=ragged)


def _record_starts(data: bytes, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offset of every record and whether it is empty, as pyarrow sees records.

    The empty record after a final line break is not a record.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = record_ends(data, breaks)
    starts = np.concatenate(([0], ends + 1))
    # a record's content stops before its `\r\n`
    crlf = (ends > 0) & (arr[ends] == 10) & (arr[np.maximum(ends - 1, 0)] == 13)
    content_ends = np.concatenate((ends - crlf, [len(arr)]))
    if starts[-1] >= len(arr):  # nothing after the last break
        starts, content_ends = starts[:-1], content_ends[:-1]
    return starts, content_ends <= starts


def _parse_with_csv_module(data: bytes, first_line: int, layout: Layout) -> ParsedChunk:
    """Exact, slower path: the csv module reports the line each record ends on."""
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=layout.delimiter)
    values: dict[str, list[str]] = {name: [] for name in layout.columns.values()}
    lines: list[int] = []
    ragged: list[RaggedRow] = []
    previous_end = 0
    for fields in reader:
        line = first_line + previous_end
        previous_end = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip() and layout.field_count > 1):
            continue
        if len(fields) != layout.field_count:
            text = layout.delimiter.join(fields)
            ragged.append(RaggedRow(line=line, fields=len(fields), text=text))
            continue
        for index, name in layout.columns.items():
            values[name].append(fields[index])
        lines.append(line)
    frame = pl.DataFrame(
        {**{name: pl.Series(name, column, dtype=pl.String) for name, column in values.items()},
         LINE: pl.Series(LINE, lines, dtype=pl.Int64)}
    )
    return ParsedChunk(frame=frame, ragged=ragged)
