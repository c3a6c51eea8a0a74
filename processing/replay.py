"""Replay files: the rows a run quarantined, as a new CSV the pipeline can read again.

After a contract fix, rows a run quarantined may now be valid. Reprocessing the whole object
(`force`) would push its already exported rows to Power BI a second time; a replay file holds
only the quarantined rows, under the original header, so that only they go through again.

Why the records are taken from the original file rather than rebuilt from the rejected CSV:
the rejected CSV keeps the values of the contract's columns only (`_raw` holds the record
text only for rows with a wrong field count), so columns the contract ignored and the
record's exact text would be lost. Each rejected row's `_line` is where its record starts in
the original; the original is read again with the engine's own reader (compression,
encoding, delimiter, line ends, chunking), and every record found is checked against the
values the rejected CSV recorded for it, so a replay can never carry some other row.

Both files are read as streams, side by side (the rejected CSV is in `_line` order), so memory
does not grow with the number of rows, even when a contract bug quarantined every row.

Rows quarantined because their id was already used by an earlier row of the same file are
left out: alone in a replay file there is no earlier row, so they would pass and push a
second row with that id. They stay in quarantine and are counted.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from processing.contract import normalise_name
from processing.engine import ERRORS, RAW
from processing.records import LINE
from processing.source import CHUNK_BYTES, Chunk, TextSource, count_breaks

# The engine's reason for a reused id (processing/engine.py, check `unique`); a test runs the
# engine to keep the two in step.
REUSED_ID_REASON = "id already used by an earlier row"
_REUSED_ID = re.compile(r"(?:^|; )[a-z0-9_]+: " + re.escape(REUSED_ID_REASON) + r"\b")
_SHOWN_MISMATCHES = 3


class ReplayError(Exception):
    """The quarantine and the original do not belong together (or are not what they say)."""


@dataclass(frozen=True)
class ReplaySummary:
    rows: int  # records written to the replay file
    reused_ids: int  # quarantined rows left out: their id belongs to an earlier row
    quarantined: int  # rows in the rejected CSV
    delimiter: str
    encoding: str  # of the original; the replay file is always UTF-8


@dataclass(frozen=True)
class _Record:
    line: int  # physical line the record starts on (the header is line 1)
    fields: list[str] | None  # None for a record whose quoted field never closes
    text: str  # the record as it is in the file, without its line end


def reuses_an_id(errors: str) -> bool:
    """Does a rejected row's `_errors` say its id belongs to an earlier row of the file?"""
    return _REUSED_ID.search(errors) is not None


def build_replay(original: Path, rejected_csv: Path, out: Path, chunk_bytes: int = CHUNK_BYTES) -> ReplaySummary:
    """Write to `out` (UTF-8) the original's header and the records of its quarantined rows.

    `rejected_csv` is the `<stem>.rejected.csv` that processing `original` wrote. Raises
    ReplayError when a quarantined row's record is not where `_line` says, or holds other
    values: the original is then not the version the quarantine was made from.
    """
    csv.field_size_limit(1 << 30)  # a quoted field may hold a whole file's worth of text
    quarantined = reused = written = 0
    with TextSource(original, chunk_bytes=chunk_bytes) as source, \
            rejected_csv.open(encoding="utf-8", newline="") as rejected_file, \
            out.open("w", encoding="utf-8", newline="") as replay:
        header = source.require_header()
        positions: dict[str, int] = {}
        for index, name in enumerate(header.names):
            positions.setdefault(normalise_name(name), index)
        replay.write(_header_line(header.names, header.delimiter))
        records = _records(source)
        record = next(records, None)
        previous = 0
        for row in _rejected_rows(rejected_file):
            quarantined += 1
            line = _line_of(row)
            if line <= previous:
                raise ReplayError(f"{rejected_csv.name} is not in `_line` order (line {line} after {previous})")
            previous = line
            while record is not None and record.line < line:
                record = next(records, None)
            if record is None or record.line != line:
                raise ReplayError(
                    f"no record starts on line {line} of {original.name}: it is not the version "
                    "the quarantine was made from"
                )
            _check_same_row(row, record, positions, len(header.names), original.name)
            if reuses_an_id(row.get(ERRORS) or ""):
                reused += 1
                continue
            replay.write(record.text + "\n")
            written += 1
        encoding = source.encoding
    return ReplaySummary(
        rows=written, reused_ids=reused, quarantined=quarantined, delimiter=header.delimiter, encoding=encoding
    )


def _header_line(names: list[str], delimiter: str) -> str:
    """The header as the original spells it (decoded), with the original's delimiter."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerow(names)
    return buffer.getvalue()


def _rejected_rows(handle: io.TextIOBase) -> Iterator[dict[str, str]]:
    reader = csv.DictReader(handle)
    missing = {LINE, ERRORS, RAW} - set(reader.fieldnames or ())
    if missing:
        raise ReplayError(f"not a rejected-rows file: no column {', '.join(sorted(missing))}")
    yield from reader


def _line_of(row: dict[str, str]) -> int:
    try:
        return int(row[LINE])
    except (TypeError, ValueError):
        raise ReplayError(f"a rejected row has no line number: `_line` is {row.get(LINE)!r}") from None


def _check_same_row(
    row: dict[str, str], record: _Record, positions: dict[str, int], field_count: int, name: str
) -> None:
    """The record on the row's line holds the values the rejected CSV recorded for it.

    Rows with a wrong field count (`_raw` set) have no column values to compare; for them
    the record must have a wrong field count too.
    """
    if row.get(RAW):
        if record.fields is not None and len(record.fields) == field_count:
            raise ReplayError(
                f"line {record.line} of {name} has the header's field count, but it was "
                "quarantined for a wrong one: not the version the quarantine was made from"
            )
        return
    if record.fields is None or len(record.fields) != field_count:
        raise ReplayError(f"line {record.line} of {name} does not hold the quarantined row")
    differing = [
        column
        for column, value in row.items()
        if column not in (LINE, ERRORS, RAW)
        and column in positions
        and record.fields[positions[column]] != value
    ]
    if differing:
        shown = ", ".join(f"`{column}`" for column in differing[:_SHOWN_MISMATCHES])
        raise ReplayError(
            f"line {record.line} of {name} holds other values ({shown}) than the quarantined "
            "row: not the version the quarantine was made from"
        )


def _records(source: TextSource) -> Iterator[_Record]:
    """Every record after the header with the line it starts on, as the engine counts lines."""
    delimiter = source.require_header().delimiter
    for chunk in source.chunks():
        yield from _chunk_records(chunk, delimiter)


def _chunk_records(chunk: Chunk, delimiter: str) -> Iterator[_Record]:
    data, tail = chunk.data, None
    if chunk.unterminated_at is not None:
        # as processing/run.py does: the last record's quote never closes, it is one row
        data, rest = data[: chunk.unterminated_at], data[chunk.unterminated_at :]
        tail = _Record(
            line=chunk.first_line + count_breaks(data),
            fields=None,
            text=rest.decode("utf-8", errors="replace").rstrip("\r\n"),
        )
    # Physical lines as the engine counts them (`\n`, `\r\n`, a lone `\r`), ends kept, so a
    # record's text is the exact slice of lines the csv module consumed for it.
    lines = list(io.StringIO(data.decode("utf-8"), newline=""))
    reader = csv.reader(iter(lines), delimiter=delimiter)
    start = 0
    for fields in reader:
        end = reader.line_num  # blank lines come too: no quarantined row starts on one
        text = "".join(lines[start:end])
        yield _Record(line=chunk.first_line + start, fields=fields, text=_without_line_end(text))
        start = end
    if tail is not None:
        yield tail


def _without_line_end(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text
