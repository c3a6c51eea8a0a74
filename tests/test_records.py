"""Cutting a byte stream into records, with the line each starts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from processing import records
from processing.records import Layout, _parse_with_csv_module, parse_chunk
from processing.source import TextSource, byte_count, byte_positions, has_c1_bytes

DATA = (
    b'1,2,3\n\n4,5\n"x\ny",7,8\n9,10,11,12\n  \n13,14,15\r\n16,17,18\r19,"a ""q"" b",21\n'
)
LAYOUT = Layout(delimiter=",", field_count=3, columns={0: "a", 2: "c"})


def test_records_keep_the_physical_line_they_start_on() -> None:
    parsed = parse_chunk(DATA, 2, LAYOUT)
    assert parsed.frame.to_dict(as_series=False) == {
        "a": ["1", "x\ny", "13", "16", "19"],
        "c": ["3", "8", "15", "18", "21"],
        "_line": [2, 5, 9, 10, 11],
    }


def test_ragged_records_are_kept_whole_with_their_field_count() -> None:
    ragged = parse_chunk(DATA, 2, LAYOUT).ragged
    assert [(r.line, r.fields, r.text) for r in ragged] == [(4, 2, "4,5"), (7, 4, "9,10,11,12")]


def test_the_exact_csv_module_path_agrees_with_the_fast_path() -> None:
    fast = parse_chunk(DATA, 2, LAYOUT)
    exact = _parse_with_csv_module(DATA, 2, LAYOUT)
    assert fast.frame.equals(exact.frame)
    assert [(r.line, r.fields) for r in fast.ragged] == [(r.line, r.fields) for r in exact.ragged]


def test_a_quote_inside_an_unquoted_field_falls_back_to_the_exact_parser() -> None:
    data = b'1,ab"c,3\n4,5,6\n'
    parsed = parse_chunk(data, 2, LAYOUT)
    assert parsed.frame["_line"].to_list()[-1] == 3
    assert parsed.frame["c"].to_list()[-1] == "6"


def test_line_numbers_stay_right_after_empty_and_blank_lines() -> None:
    parsed = parse_chunk(b"\n1,2,3\n4,5\n \t \n\n7,8,9\n", 2, LAYOUT)
    assert parsed.frame["_line"].to_list() == [3, 7]
    assert [(r.line, r.fields) for r in parsed.ragged] == [(4, 2)]


def test_byte_scans_reuse_their_mask_buffer_without_leaking_an_earlier_chunk() -> None:
    big = b"a;b\n" * 1000 + b";"
    small = b"x\n;"
    assert byte_positions(big, ord(";")).tolist() == [1 + 4 * i for i in range(1000)] + [4000]
    # the buffer now holds the big chunk's mask; a shorter chunk must see only its own bytes
    assert byte_positions(small, ord(";")).tolist() == [2]
    assert byte_count(small, ord("\n")) == 1
    assert byte_count(big, ord("\n")) == 1000
    assert byte_positions(b"", ord(";")).tolist() == []


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("Pão de Açúcar; ÿ à\n".encode("cp1252") * 50, "Pão de Açúcar; ÿ à\n" * 50),  # Latin-1 range only
        ("€ 5; “x” …\n".encode("cp1252") * 50, "€ 5; “x” …\n" * 50),  # the bytes 0x80-0x9F
        (b"\x81\xe9\n" * 50, "\x81é\n" * 50),  # a byte cp1252 leaves undefined reads as Latin-1
        # `Ã©` is `é` in UTF-8 bytes: the first accented letter alone does not decide
        ("Ã©;x\nMüller\n".encode("cp1252"), "Ã©;x\nMüller\n"),
    ],
)
def test_windows_1252_chunks_decode_as_the_codec_reads_them(tmp_path: Path, data: bytes, text: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n")
    with TextSource(path) as source:
        assert source.decode(data) == text.encode("utf-8")
        assert source.decode(memoryview(bytearray(data))) == text.encode("utf-8")
        assert source.encoding == "windows-1252"
    assert has_c1_bytes(data) == any(0x80 <= byte < 0xA0 for byte in data)


FAST_PATH_CASES = [
    b'1,2,3\n\n4,5\n"x\ny",7,8\n9,10,11,12\n  \n13,14,15\r\n16,17,18\r\n19,"a ""q"" b",21\n',
    b'1,"2,2",3\n4,5,"6\r\n6"\n,,\n7,8,9',  # delimiters inside quotes, empty fields, no final break
    b"\n\n1,2,3\n1,2\n1,2,3,4,5\n",
    # records of 256 bytes and more, and quoted fields holding 300 delimiters: field counts
    # summed wider than one byte (a one-byte sum would wrap at 256)
    b"1,2,3\n" + b"," * 299 + b"\n" + b"1," * 300 + b"3\n4,5,6\n",
    b'1,"' + b"," * 300 + b'",3\n4,"' + b"x" * 400 + b'",6\n7,8,9\n' + b"," * 256 + b"\n",
]


@pytest.mark.parametrize(
    "text", ["", "plain ASCII\n", "Müller; Pão\n", "x" * 5000 + "€\n", "日本;🙂\n"]
)
def test_utf8_chunks_are_kept_as_they_are(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n")
    with TextSource(path) as source:
        assert source.decode(memoryview(bytearray(text.encode("utf-8")))) == text.encode("utf-8")
        assert source.encoding == "utf-8"


@pytest.mark.parametrize("data", FAST_PATH_CASES)
def test_the_polars_path_reads_what_the_exact_csv_path_reads(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field counts, blank lines and line numbers from the numpy scan agree with the csv
    module's reading, record for record (the fast path must not fall back on these)."""
    expected = _parse_with_csv_module(data, 7, LAYOUT)

    def no_fallback(*args: object) -> None:
        raise AssertionError("fell back to the csv module")

    monkeypatch.setattr(records, "_parse_with_csv_module", no_fallback)
    parsed = parse_chunk(data, 7, LAYOUT)
    assert parsed.frame.to_dict(as_series=False) == expected.frame.to_dict(as_series=False)
    assert [(r.line, r.fields, r.text) for r in parsed.ragged] == [
        (r.line, r.fields, r.text) for r in expected.ragged
    ]
