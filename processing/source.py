"""Reading a file as UTF-8 chunks of whole CSV records, in bounded memory.

Why by hand and not one library call: the file must be streamed (memory does not grow with
its size), its encoding may change half way (a Windows-1252 file whose first megabytes are
plain ASCII), and every quarantined row must carry the physical line it starts on. The
parsing of fields is left to polars' CSV reader (see records.py); here we only cut the
byte stream at record boundaries, which needs no more than newline and quote positions.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from processing.errors import FileRejected, SourceStateError

CHUNK_BYTES = 5 * 1024 * 1024  # memory ~ chunk size; smaller chunks pay Pandera's ~15 ms per call more often (bench/)
HEADER_MAX_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


def _latin1_for_undefined(error: UnicodeError) -> tuple[str, int]:
    """cp1252 leaves five bytes undefined; read them as Latin-1 rather than fail the file."""
    if not isinstance(error, UnicodeDecodeError):
        raise TypeError(f"ivi-latin1 handles decoding errors only, not {type(error).__name__}")
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("ivi-latin1", _latin1_for_undefined)


@dataclass
class Header:
    """The header record: raw names, delimiter and where the data starts."""

    names: list[str]
    delimiter: str
    line: int  # physical line of the header (1 unless blank lines precede it)
    lines: int  # physical lines the header spans


@dataclass(frozen=True)
class LineBreaks:
    """Where a chunk's lines end: found once, for its line count and for the parser."""

    newlines: np.ndarray  # offsets of every `\n`
    lone_returns: np.ndarray  # offsets of every `\r` not followed by `\n` (old Mac)

    @classmethod
    def of(cls, data: bytes) -> LineBreaks:
        return cls(newlines=byte_positions(data, 10), lone_returns=lone_returns(data))

    @property
    def count(self) -> int:
        return len(self.newlines) + len(self.lone_returns)

    def all(self) -> np.ndarray:
        """Every break's offset, in order."""
        if len(self.lone_returns) == 0:  # `\r\n` files: their `\n`s are all the breaks
            return self.newlines
        # merges two sorted runs
        return np.sort(np.concatenate((self.newlines, self.lone_returns)), kind="stable")


@dataclass
class Chunk:
    """UTF-8 bytes holding whole records; `first_line` is the line its first byte is on."""

    data: bytes
    first_line: int
    breaks: LineBreaks
    unterminated_at: int | None = None  # offset of a last record whose quote never closes


@dataclass
class TextSource:
    """A file opened for reading: compression and encoding sniffed, header read."""

    path: Path
    chunk_bytes: int = CHUNK_BYTES
    encoding: str = "utf-8"
    compression: str = "none"
    header: Header | None = None
    _stream: BinaryIO | None = field(default=None, repr=False)
    _buffer: bytes | bytearray = field(default=b"", repr=False)
    _spare: bytearray | None = field(default=None, repr=False)  # a chunk's buffer, for the next
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

    def require_header(self) -> Header:
        """The header `open()` read; SourceStateError before that."""
        if self.header is None:
            raise SourceStateError(f"{self.path}: read before open(): no header yet")
        return self.header

    def _require_stream(self) -> BinaryIO:
        if self._stream is None:
            raise SourceStateError(f"{self.path}: read before open(): no stream yet")
        return self._stream

    def __enter__(self) -> TextSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw bytes -----------------------------------------------------------------------
    def _read_block(self, size: int) -> bytes:
        stream = self._require_stream()
        with _gzip_errors_rejected():
            return stream.read(size)

    def _read_into(self, view: memoryview) -> int:
        stream = self._require_stream()
        with _gzip_errors_rejected():
            return stream.readinto(view)

    def _transcode(self, data: bytes, final: bool = False) -> bytes:
        if self._transcoder is None:
            raise SourceStateError(f"{self.path}: transcoding a file that is not UTF-16")
        try:
            return self._transcoder.decode(data, final).encode("utf-8")
        except UnicodeDecodeError as error:
            raise FileRejected(f"not a text file: invalid UTF-16 ({error.reason})") from None

    def _fill(self, wanted: int) -> None:
        """Grow the buffer to at least `wanted` bytes unless the file ends first.

        The file is read straight into the buffer, after the bytes carried over: no separate
        block to join, and the buffer's memory is the previous chunk's (each fresh 5 MB block
        costs 1,280 page faults, memory.py says why).
        """
        size = len(self._buffer)
        if size >= wanted or self._eof:
            return
        if self._transcoder is not None:
            self._fill_transcoded(wanted)
            return
        # at least 1 MB a read, unless the chunks asked for are smaller (the tests)
        target = max(wanted, size + min(wanted, 1 << 20))
        buffer, self._spare = self._spare or bytearray(), None
        if len(buffer) < target:  # grows within its allocation once it had a chunk's size
            buffer.extend(bytes(target - len(buffer)))
        buffer[:size] = self._buffer
        with memoryview(buffer) as view:
            while size < wanted:
                read = self._read_into(view[size:target])
                if not read:
                    self._eof = True
                    break
                size += read
        del buffer[size:]  # keeps its allocation: the chunks are all about this size
        self._buffer = buffer

    def _fill_transcoded(self, wanted: int) -> None:
        parts = [self._buffer]
        size = len(self._buffer)
        while size < wanted and not self._eof:
            block = self._read_block(max(wanted - size, min(wanted, 1 << 20)))
            if not block:
                self._eof = True
                parts.append(self._transcode(b"", final=True))
                break
            block = self._transcode(block)
            parts.append(block)
            size += len(block)
        self._buffer = b"".join(parts)

    @staticmethod
    def _reject_binary(sample: bytes) -> None:
        """NUL bytes are what binary formats (images, archives, UTF-16 without BOM) have and
        text never has; other control characters can be legitimate data."""
        if b"\x00" in sample:
            raise FileRejected("not a text file: it contains NUL bytes")

    # -- decoding ------------------------------------------------------------------------
    def decode(self, data: bytes | bytearray | memoryview) -> bytes:
        """UTF-8 bytes of `data`; a chunk that is not UTF-8 is read as Windows-1252.

        It takes a view of the read buffer, so that Windows-1252 is decoded from the buffer
        itself rather than from a copy of the chunk first.
        """
        if self._transcoder is not None:
            return bytes(data)
        first = _first_non_ascii(data)
        if first < 0 or _is_utf8(data, first):
            return bytes(data)
        self.encoding = "windows-1252"
        if not has_c1_bytes(data):  # Latin-1 decodes by copying: 15 -> 9 ms per 5 MB
            return str(data, "latin-1").encode("utf-8")
        return str(data, "cp1252", errors="ivi-latin1").encode("utf-8")

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
        if end is not None and end + 1 == len(self._buffer) and self._buffer[end] == 13:
            self._fill(end + 2)  # a `\r` last in the buffer: its `\n` may be in the next read
        record = self._buffer if end is None else self._buffer[:end]
        self._buffer = b"" if end is None else self._buffer[end:]
        self._buffer = _skip_one_newline(self._buffer)
        text = self.decode(record).decode("utf-8").rstrip("\r\n")
        spans = count_breaks(record) + 1
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
                line = self._next_line + count_breaks(self._buffer[:nul])
                raise FileRejected(f"not a text file: NUL byte on line {line}")
            delimiter = self.require_header().delimiter
            cut = None if self._eof else _last_record_end(self._buffer, delimiter)
            if cut is None and not self._eof:
                # one record longer than the buffer (a huge quoted field): read on
                self._fill(len(self._buffer) * 2)
                continue
            with memoryview(self._buffer) as view:
                data = self.decode(view[:cut])
            read, self._buffer = self._buffer, b"" if cut is None else self._buffer[cut:]
            if isinstance(read, bytearray):
                self._spare = read  # the next chunk is read into the same memory
            # line breaks are ASCII: the decoded chunk has as many as the file's bytes
            chunk = Chunk(data=data, first_line=self._next_line, breaks=LineBreaks.of(data))
            del data
            if cut is None and _quote_count_is_odd(chunk.data):
                chunk.unterminated_at = _unterminated_record_start(chunk.data, delimiter)
            self._next_line += chunk.breaks.count
            yield chunk
            del chunk


@contextlib.contextmanager
def _gzip_errors_rejected() -> Iterator[None]:
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise FileRejected(f"not a text file: corrupt gzip data ({error})") from None


_scratch = threading.local()
SCRATCH_MAX_BYTES = 16 * 1024 * 1024


def byte_positions(data: bytes, byte: int) -> np.ndarray:
    """Offsets of every `byte` in `data`.

    The comparison's mask goes into a buffer each thread reuses: a fresh chunk-sized mask
    per call cost a page fault per 4 KB (eight masks per 5 MB chunk, ~10% of the CPU time).
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    return np.flatnonzero(_scratch_mask(np.equal, arr, byte))


def byte_count(data: bytes, byte: int) -> int:
    """How many `byte`s `data` holds (see `byte_positions`)."""
    return int(np.count_nonzero(_scratch_mask(np.equal, np.frombuffer(data, dtype=np.uint8), byte)))


def delimiter_mask(data: bytes, delimiter: str) -> np.ndarray:
    """1 where `data` holds `delimiter`, else 0 (one byte each, in the thread's reused buffer:
    valid until the next scan)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return _scratch_mask(np.equal, arr, ord(delimiter)).view(np.uint8)


def _first_non_ascii(data: bytes | bytearray | memoryview) -> int:
    """Offset of the first byte above 0x7F, or -1 when `data` is ASCII."""
    if len(data) == 0:
        return -1
    high = _scratch_mask(np.greater_equal, np.frombuffer(data, dtype=np.uint8), 0x80)
    first = int(high.argmax())
    return first if high[first] else -1


def _is_utf8(data: bytes | bytearray | memoryview, first_non_ascii: int) -> bool:
    """Whether `data` is valid UTF-8, judged first by its first non-ASCII character alone.

    Why: a failed decode copies its whole input into the error it raises (5 MB per
    Windows-1252 chunk). Such a chunk almost always fails on its first accented letter
    (`ü` is one byte there, not a valid UTF-8 start), so only those four bytes are decoded.
    """
    window = bytes(data[first_non_ascii : first_non_ascii + 4])
    try:
        codecs.utf_8_decode(window, "strict", False)  # not final: a cut-off character is fine
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def has_c1_bytes(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` holds a byte from 0x80 to 0x9F: the only bytes that Windows-1252 reads
    otherwise than Latin-1 (`€`, `“`, `…`, ...)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    shifted = _scratch_mask(np.subtract, arr, 0x80, out_dtype=np.uint8)  # 0x80-0x9F -> 0-31
    return bool(np.less(shifted, 0x20, out=shifted.view(bool)).any())


def _scratch_mask(
    operation: np.ufunc, arr: np.ndarray, byte: int, out_dtype: type = bool
) -> np.ndarray:
    """`operation(arr, byte)` in the thread's reused one-byte buffer (see `byte_positions`)."""
    buffer: np.ndarray | None = getattr(_scratch, "mask", None)
    if buffer is None or len(buffer) < len(arr):
        # with room to spare: chunks differ in size, and a bigger one must not fault again
        buffer = np.empty(len(arr) + len(arr) // 32, dtype=bool)
        if len(arr) <= SCRATCH_MAX_BYTES:  # a huge record's mask is not kept
            _scratch.mask = buffer
    mask = buffer[: len(arr)].view(out_dtype)
    operation(arr, byte, out=mask)
    return mask


def count_breaks(data: bytes) -> int:
    """Physical line breaks: `\\n`, `\\r\\n` and a lone `\\r` each count once.

    With numpy: `bytes.count` of one byte ran at ~2 GB/s, a numpy comparison at ~20 GB/s,
    and this runs on every chunk."""
    newlines = byte_count(data, 10)
    if b"\r" not in data:
        return newlines
    return newlines + len(lone_returns(data))


def _skip_one_newline(data: bytes) -> bytes:
    if data.startswith(b"\r\n"):
        return data[2:]
    if data[:1] in (b"\n", b"\r"):
        return data[1:]
    return data


def line_breaks(data: bytes) -> np.ndarray:
    """Offsets of every physical line break: `\\n`, a lone `\\r`, and the `\\n` of `\\r\\n`.

    One byte mask at a time: the chunk is megabytes long and each mask costs its size again.
    """
    return LineBreaks.of(data).all()


def lone_returns(data: bytes) -> np.ndarray:
    """Offsets of the `\\r`s not followed by `\\n` (old Mac line breaks)."""
    if b"\r" not in data:
        return np.empty(0, dtype=np.intp)
    arr = np.frombuffer(data, dtype=np.uint8)
    returns = byte_positions(data, 13)
    followed_by_newline = returns + 1 < len(arr)
    followed_by_newline[followed_by_newline] = arr[returns[followed_by_newline] + 1] == 10
    return returns[~followed_by_newline]


def quote_positions(data: bytes) -> np.ndarray:
    """Offsets of every `"` in `data`: found once per chunk and handed to the scans below."""
    return byte_positions(data, 34) if b'"' in data else np.empty(0, dtype=np.intp)


def quotes_follow_rfc4180(data: bytes, delimiter: str, quotes: np.ndarray | None = None) -> bool:
    """Whether every quote in `data` (which starts at a record start) opens a field, closes
    one, or is half of an escaped `""`: then quote parity alone tells which line breaks end
    records (`record_ends`).

    A quote inside an unquoted field (`TV 32"`) is a plain character to the parsers, but it
    flips the parity of everything after it: the line breaks of later records would look
    quoted and those inside a later quoted field would look like record ends. By position,
    the quotes that parity counts as opening must follow a delimiter, a line break, the
    start or another quote, and those it counts as closing must precede one of those or the
    end; anything else (conservatively, also `"a"b`) is a file the csv module must cut.
    """
    quotes = quote_positions(data) if quotes is None else quotes
    if len(quotes) == 0:
        return True
    arr = np.frombuffer(data, dtype=np.uint8)
    separator = ord(delimiter)

    def bound(byte: np.ndarray) -> np.ndarray:
        return (byte == separator) | (byte == 10) | (byte == 13) | (byte == 34)

    opening, closing = quotes[0::2], quotes[1::2]
    if opening[0] != 0 and not bound(arr[opening[:1] - 1]).all():
        return False
    if closing.size and closing[-1] + 1 == len(arr):
        closing = closing[:-1]
    return bool(bound(arr[opening[1:] - 1]).all() and bound(arr[closing + 1]).all())


def record_ends(
    data: bytes, breaks: np.ndarray | None = None, quotes: np.ndarray | None = None
) -> np.ndarray:
    """The line breaks that end a record: those with an even number of quotes before them
    (right only where `quotes_follow_rfc4180`)."""
    breaks = line_breaks(data) if breaks is None else breaks
    quotes = quote_positions(data) if quotes is None else quotes
    if len(quotes) == 0:
        return breaks
    return breaks[(np.searchsorted(quotes, breaks) & 1) == 0]


def _first_record_end(data: bytes) -> int | None:
    """Offset where the first record's content ends (its line break starts), or None."""
    quick = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
    if quick >= 0 and data.count(b'"', 0, quick) % 2 == 0:
        return quick
    breaks = record_ends(data)
    if len(breaks) == 0:
        return None
    end = int(breaks[0])
    return end - 1 if end > 0 and data[end] == 10 and data[end - 1] == 13 else end


def _last_record_end(data: bytes, delimiter: str) -> int | None:
    """Offset just past the last complete record in `data` (a trailing lone `\\r` waits).

    Fast path: a line break with an even number of quotes before it is outside any quoted
    field, for files that quote as RFC 4180 does. A quote inside an unquoted field (`TV 32"`)
    breaks that parity (`quotes_follow_rfc4180`); the csv module, which reads such a quote as
    a plain character like polars does, then decides, as it does when the parity finds no
    break in the second half of the buffer.
    """
    quotes = quote_positions(data)
    if not quotes_follow_rfc4180(data, delimiter, quotes):
        return _exact_last_record_end(data, delimiter)
    quick = data.rfind(b"\n")
    # quotes before it, from their positions: `bytes.count` holds the GIL for 3 ms per chunk
    if quick >= 0 and int(np.searchsorted(quotes, quick)) % 2 == 0:
        return quick + 1
    candidate = None
    for position in record_ends(data, quotes=quotes)[::-1][:2]:
        position = int(position)
        if data[position] == 13 and position + 1 == len(data):
            continue  # may be the \r of a \r\n split across reads
        candidate = position + 1
        break
    if candidate is not None and candidate >= len(data) // 2:
        return candidate
    exact = _exact_last_record_end(data, delimiter)
    return exact if exact is not None else candidate


def _line_starts(data: bytes) -> np.ndarray:
    """Offset of the first byte of every physical line (as the csv module counts lines)."""
    return np.concatenate(([0], line_breaks(data) + 1))


def _csv_records_lines(data: bytes, delimiter: str, strict: bool) -> tuple[list[int], bool]:
    """Line count after each complete record, and whether the data ends inside quotes.

    Latin-1 maps each byte to one character, so line and byte positions stay aligned
    whatever the real encoding (quotes, delimiters and line breaks are ASCII).
    """
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(data.decode("latin-1"), newline=""), delimiter=delimiter,
                        strict=strict)
    ends: list[int] = []
    try:
        for _record in reader:
            ends.append(reader.line_num)
    except csv.Error:
        return ends, True
    return ends, False


def _exact_last_record_end(data: bytes, delimiter: str) -> int | None:
    ends, _open = _csv_records_lines(data, delimiter, strict=False)
    if len(ends) < 2:
        return None
    starts = _line_starts(data)
    line = ends[-2]  # the last record read may be cut short by the end of the buffer
    return int(starts[line]) if line < len(starts) else None


def _quote_count_is_odd(data: bytes) -> bool:
    return data.count(b'"') % 2 == 1


def _unterminated_record_start(data: bytes, delimiter: str) -> int | None:
    """Offset of a final record whose quoted field the file never closes, else None.

    An odd number of quotes is only a hint (`TV 32"` is an odd quote too): the csv module in
    strict mode reports the end of data inside a quoted field.
    """
    ends, open_at_end = _csv_records_lines(data, delimiter, strict=True)
    if not open_at_end:
        return None
    starts = _line_starts(data)
    line = ends[-1] if ends else 0
    return int(starts[line]) if line < len(starts) else None


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
