"""Reading a file as UTF-8 chunks of whole CSV records, in bounded memory.

Why by hand and not one library call: the file must be streamed (memory does not grow with
its size), its encoding may change half way (a Windows-1252 file whose first megabytes are
plain ASCII), and every quarantined row must carry the physical line it starts on. The
parsing of fields is left to pyarrow's CSV reader (see records.py); here we only cut the
byte stream at record boundaries, which needs no more than newline and quote positions.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from processing.errors import FileRejected

CHUNK_BYTES = 8 * 1024 * 1024
HEADER_MAX_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_CONTROL_BYTES = bytes(range(0, 32)).replace(b"\t", b"").replace(b"\n", b"").replace(b"\r", b"")


def _latin1_for_undefined(error: UnicodeError) -> tuple[str, int]:
    """cp1252 leaves five bytes undefined; read them as Latin-1 rather than fail the file."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("ivi-latin1", _latin1_for_undefined)


@dataclass
class Header:
    """The header record: raw names, delimiter and where the data starts."""

    names: list[str]
    delimiter: str
    line: int  # physical line of the header (1 unless blank lines precede it)
    lines: int  # physical lines the header spans


@dataclass
class Chunk:
    """UTF-8 bytes holding whole records; `first_line` is the line its first byte is on."""

    data: bytes
    first_line: int
    unterminated: bool = False  # the last record opens a quote that the file never closes


@dataclass
class TextSource:
    """A file opened for reading: compression and encoding sniffed, header read."""

    path: Path
    chunk_bytes: int = CHUNK_BYTES
    encoding: str = "utf-8"
    compression: str = "none"
    header: Header | None = None
    _stream: BinaryIO | None = field(default=None, repr=False)
    _buffer: bytes = field(default=b"", repr=False)
    _eof: bool = field(default=False, repr=False)
    _next_line: int = field(default=1, repr=False)
    _transcoder: codecs.IncrementalDecoder | None = field(default=None, repr=False)

    # -- opening -------------------------------------------------------------------------
    def open(self) -> TextSource:
        raw = self.path.open("rb")
        magic = raw.read(2)
        raw.seek(0)
        stream: BinaryIO = raw
        if magic == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            self.compression = "gzip"
        self._stream = stream
        first = self._read_block(4)
        if first.startswith(codecs.BOM_UTF8):
            self.encoding = "utf-8-sig"
            self._buffer = first[3:]
        elif first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding = "utf-16"
            self._transcoder = codecs.getincrementaldecoder("utf-16")()
            self._buffer = self._transcode(first)
        else:
            self._buffer = first
        self._fill(self.chunk_bytes)
        if not self._buffer.strip():
            raise FileRejected("empty file: no header and no rows")
        self._reject_binary(self._buffer[: 1 << 16])
        self.header = self._read_header()
        return self

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> TextSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw bytes -----------------------------------------------------------------------
    def _read_block(self, size: int) -> bytes:
        assert self._stream is not None
        try:
            return self._stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise FileRejected(f"not a text file: corrupt gzip data ({error})") from None

    def _transcode(self, data: bytes, final: bool = False) -> bytes:
        assert self._transcoder is not None
        try:
            return self._transcoder.decode(data, final).encode("utf-8")
        except UnicodeDecodeError as error:
            raise FileRejected(f"not a text file: invalid UTF-16 ({error.reason})") from None

    def _fill(self, wanted: int) -> None:
        """Grow the buffer to at least `wanted` bytes unless the file ends first."""
        parts = [self._buffer]
        size = len(self._buffer)
        while size < wanted and not self._eof:
            block = self._read_block(max(wanted - size, 1 << 20))
            if not block:
                self._eof = True
                if self._transcoder is not None:
                    parts.append(self._transcode(b"", final=True))
                break
            if self._transcoder is not None:
                block = self._transcode(block)
            parts.append(block)
            size += len(block)
        self._buffer = b"".join(parts)

    @staticmethod
    def _reject_binary(sample: bytes) -> None:
        if b"\x00" in sample:
            raise FileRejected("not a text file: it contains NUL bytes")
        controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
        if sample and controls / len(sample) > 0.01:
            raise FileRejected("not a text file: too many control characters")

    # -- decoding ------------------------------------------------------------------------
    def decode(self, data: bytes) -> bytes:
        """UTF-8 bytes of `data`; a chunk that is not UTF-8 is read as Windows-1252."""
        if self._transcoder is not None or data.isascii():
            return data
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            self.encoding = "windows-1252"
            return data.decode("cp1252", errors="ivi-latin1").encode("utf-8")

    # -- records -------------------------------------------------------------------------
    def _read_header(self) -> Header:
        line = 1
        while True:
            stripped = self._buffer.lstrip(b" \t")
            if stripped[:2] == b"\r\n":
                self._buffer, line = stripped[2:], line + 1
            elif stripped[:1] in (b"\n", b"\r"):
                self._buffer, line = stripped[1:], line + 1
            else:
                break
        end = _first_record_end(self._buffer)
        while end is None and not self._eof and len(self._buffer) < HEADER_MAX_BYTES:
            self._fill(len(self._buffer) * 2)
            end = _first_record_end(self._buffer)
        if end is None and not self._eof:
            raise FileRejected("no header: the first line is longer than 64 MB")
        record = self._buffer if end is None else self._buffer[:end]
        self._buffer = b"" if end is None else self._buffer[end:]
        self._buffer = _skip_one_newline(self._buffer)
        text = self.decode(record).decode("utf-8").rstrip("\r\n")
        spans = _count_breaks(record) + 1
        self._next_line = line + spans
        names, delimiter = _split_header(text)
        return Header(names=names, delimiter=delimiter, line=line, lines=spans)

    def chunks(self) -> Iterator[Chunk]:
        """Whole records after the header, about `chunk_bytes` at a time, as UTF-8."""
        while True:
            self._fill(self.chunk_bytes)
            if not self._buffer:
                return
            nul = self._buffer.find(b"\x00")
            if nul >= 0:
                line = self._next_line + _count_breaks(self._buffer[:nul])
                raise FileRejected(f"not a text file: NUL byte on line {line}")
            cut = None if self._eof else _last_record_end(self._buffer)
            if cut is None and not self._eof:
                # one record longer than the buffer (a huge quoted field): read on
                self._fill(len(self._buffer) * 2)
                continue
            data = self._buffer if cut is None else self._buffer[:cut]
            self._buffer = b"" if cut is None else self._buffer[cut:]
            chunk = Chunk(data=self.decode(data), first_line=self._next_line)
            if cut is None and _quote_open_at_end(data):
                chunk.unterminated = True
            self._next_line += _count_breaks(data)
            yield chunk


def _count_breaks(data: bytes) -> int:
    """Physical line breaks: `\\n`, `\\r\\n` and a lone `\\r` each count once."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _skip_one_newline(data: bytes) -> bytes:
    if data.startswith(b"\r\n"):
        return data[2:]
    if data[:1] in (b"\n", b"\r"):
        return data[1:]
    return data


def _record_breaks(data: bytes) -> np.ndarray:
    """Offsets of line breaks that end a record (outside quotes); `\\r\\n` ends at the `\\n`."""
    arr = np.frombuffer(data, dtype=np.uint8)
    is_nl = arr == 10
    breaks_mask = is_nl | (arr == 13)
    breaks_mask[:-1] &= ~((arr[:-1] == 13) & is_nl[1:])  # the \r of \r\n is not a break
    breaks = np.flatnonzero(breaks_mask)
    quotes = np.flatnonzero(arr == 34)
    return breaks[(np.searchsorted(quotes, breaks) & 1) == 0]


def _first_record_end(data: bytes) -> int | None:
    """Offset where the first record's content ends (its line break starts), or None."""
    quick = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
    if quick >= 0 and data.count(b'"', 0, quick) % 2 == 0:
        return quick
    breaks = _record_breaks(data)
    if len(breaks) == 0:
        return None
    end = int(breaks[0])
    return end - 1 if end > 0 and data[end] == 10 and data[end - 1] == 13 else end


def _last_record_end(data: bytes) -> int | None:
    """Offset just past the last complete record in `data` (a trailing lone `\\r` waits)."""
    quick = data.rfind(b"\n")
    if quick >= 0 and data.count(b'"', 0, quick) % 2 == 0:
        return quick + 1
    breaks = _record_breaks(data)
    for position in breaks[::-1][:2]:
        position = int(position)
        if data[position] == 13 and position + 1 == len(data):
            continue  # may be the \r of a \r\n split across reads
        return position + 1
    return None


def _quote_open_at_end(data: bytes) -> bool:
    return data.count(b'"') % 2 == 1


def _split_header(text: str) -> tuple[list[str], str]:
    """Header fields and the delimiter: `;` when it splits the header into more fields."""
    csv.field_size_limit(1 << 30)
    best: tuple[list[str], str] = ([text], ",")
    for delimiter in (",", ";"):
        try:
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        except csv.Error:
            continue
        if len(fields) > len(best[0]):
            best = (fields, delimiter)
    return best
