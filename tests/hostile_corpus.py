"""The hostile-input corpus: files a user (or an attacker) can drop into the pipeline.

Each `Case` knows how to build its file into a directory (at test time: no large binary
fixtures live in git; the 2 MB and 10 MB files are generated on the fly), which contract it is
processed against, and the outcome the rules in docs/processing.md promise for it. The tests
in `test_hostile_inputs.py` run every case through `ivi process` and check that outcome.

Expected values are written from the documented rules, not from what the engine happens to
do: where the engine disagrees, the test fails and one of the two is wrong.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Builder = Callable[[Path], Path]

PROCESSED = 0
REJECTED = 1
USAGE = 2

VENDAS_COLUMNS: tuple[str, ...] = (
    "id_venda",
    "data_venda",
    "cliente",
    "produto",
    "categoria",
    "quantidade",
    "preco_unitario",
    "valor_total",
    "uf",
)
VENDAS_HEADER = ",".join(VENDAS_COLUMNS)
CLIENTES_OPTIONAL: frozenset[str] = frozenset(
    {
        "id_cliente",
        "estado_civil",
        "tempo_como_cliente",
        "numero_compras_mensal",
        "valor_medio_compra",
        "suporte_acionado",
        "nps",
        "churn",
    }
)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
TWO_MB = 2_000_000
TEN_MB = 10_000_000


@dataclass(frozen=True)
class Expected:
    """What the documented rules promise for one file.

    Row keys: `rejected*` maps are keyed by `_line` (the physical line a row starts on);
    `csv_*`/`json_values` are keyed by (index among the exported rows, in input order, column).
    Unset fields are not checked.
    """

    exit_code: int
    # exit 1/2: every substring must be on the one stderr line; `stderr_any`: at least one.
    stderr_has: tuple[str, ...] = ()
    stderr_any: tuple[str, ...] = ()
    stderr_max_chars: int | None = None
    # exit 0: the exact row accounting.
    input_rows: int | None = None
    exported: int | None = None
    quarantined: int | None = None
    duplicates: int | None = None
    # `<stem>.rejected.csv`
    rejected: Mapping[int, str] = field(default_factory=dict)  # _line -> exact _errors
    rejected_first_error: Mapping[int, str] = field(default_factory=dict)  # _line -> 1st error
    rejected_raw: Mapping[int, str] = field(default_factory=dict)  # _line -> exact _raw
    # `<stem>.csv` / `<stem>.json`
    csv_header: tuple[str, ...] | None = None
    csv_values: Mapping[tuple[int, str], str] = field(default_factory=dict)
    csv_numbers: Mapping[tuple[int, str], float] = field(default_factory=dict)
    csv_value_lengths: Mapping[tuple[int, str], int] = field(default_factory=dict)
    json_values: Mapping[tuple[int, str], object] = field(default_factory=dict)
    # `<stem>.report.json`
    report: Mapping[str, object] = field(default_factory=dict)  # exact fields
    ignored_columns: frozenset[str] | None = None  # as a set (order / repeats not specified)
    ignored_count: int | None = None
    missing_optional: frozenset[str] | None = None
    failures: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # subset


@dataclass(frozen=True)
class Case:
    """One hostile file: how to build it, which contract applies, what must happen, and why."""

    name: str
    build: Builder
    contract: str
    expected: Expected
    why: str
    via_subprocess: bool = False  # also run through a real `python -m ivi.cli` process


# --------------------------------------------------------------------------------------------
# Building blocks


def vrow(
    id_venda: object,
    *,
    data: str = "2024-01-15",
    cliente: str = "Ana",
    produto: str = "Caneta",
    categoria: str = "Papelaria",
    quantidade: str = "2",
    preco: str = "10.50",
    total: str = "21.00",
    uf: str = "SP",
    sep: str = ",",
) -> str:
    """One `vendas` record (no line end); the defaults make a valid row."""
    values = [str(id_venda), data, cliente, produto, categoria, quantidade, preco, total, uf]
    return sep.join(values)


def lines(*records: str, nl: str = "\n", final_newline: bool = True) -> str:
    """Join records with one newline style."""
    text = nl.join(records)
    return text + nl if final_newline else text


def write_bytes(name: str, data: bytes | Callable[[], bytes]) -> Builder:
    """A builder that writes fixed (or lazily generated) bytes to `directory/name`."""

    def build(directory: Path) -> Path:
        path = directory / name
        path.write_bytes(data() if callable(data) else data)
        return path

    return build


def write_text(name: str, text: str | Callable[[], str], encoding: str = "utf-8") -> Builder:
    """A builder that writes text in an encoding (newlines written exactly as given)."""
    return write_bytes(name, lambda: (text() if callable(text) else text).encode(encoding))


def _png_bytes() -> bytes:
    """A real 1x1 PNG: signature, IHDR, IDAT, IEND (its chunk lengths carry NUL bytes)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _zip_bytes() -> bytes:
    """A zip archive holding a perfectly valid vendas CSV (zip is not a supported wrapper)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("vendas.csv", lines(VENDAS_HEADER, vrow(1), vrow(2)))
    return buffer.getvalue()


def _random_bytes() -> bytes:
    """4 KiB of seeded random bytes (deterministic; contains NULs, no gzip magic)."""
    return random.Random(20261129).randbytes(4096)


def _mixed_newlines() -> bytes:
    return "".join(
        [
            VENDAS_HEADER + "\n",  # line 1
            vrow(1) + "\r\n",  # line 2
            vrow(2, uf="XX") + "\r",  # line 3: quarantined
            vrow(3) + "\n",  # line 4
            "\r\n",  # line 5: blank, not a row
            vrow(4, quantidade="0", total="0.00") + "\r",  # line 6: quarantined
            vrow(5),  # line 7, no final newline
        ]
    ).encode()


def _columns_20000() -> str:
    """20,000 columns: the 9 contract columns spread among 19,991 unknown ones."""
    names = [f"extra_{i:05d}" for i in range(20_000 - len(VENDAS_COLUMNS))]
    positions = [0, 2_500, 5_000, 7_500, 10_000, 12_500, 15_000, 17_500, 19_999]
    values_by_column = dict(zip(VENDAS_COLUMNS, vrow(0).split(","), strict=True))
    header = list(names)
    for pos, col in zip(positions, VENDAS_COLUMNS, strict=True):
        header.insert(pos, col)
    assert len(header) == 20_000

    def record(id_venda: int) -> str:
        return ",".join(
            str(id_venda) if col == "id_venda" else values_by_column.get(col, "z")
            for col in header
        )

    return lines(",".join(header), record(1), record(2))


def _late_invalid_utf8() -> bytes:
    """~1.3 MB of ASCII rows, then one row in Windows-1252 (`Conceição`, 0xE7 0xE3)."""
    head = lines(VENDAS_HEADER, *(vrow(i, cliente=f"Cliente {i}") for i in range(1, 20_001)))
    tail = lines(vrow(20_001, cliente="Conceição", produto="Pão"))
    return head.encode("ascii") + tail.encode("cp1252")


def _nul_after_megabytes() -> bytes:
    """~9 MB of valid rows (past any first read or sniffing window), then one NUL byte."""
    rows = (vrow(i, cliente=f"Cliente {i:07d}") for i in range(1, 140_001))
    head = lines(VENDAS_HEADER, *rows).encode()
    assert len(head) > 9_000_000
    return head + lines(vrow(140_001, cliente="Nu\x00l")).encode()


def _huge_multiline_quoted_field() -> str:
    """A quoted 9 MB value spanning 1,500,000 physical lines, then a quarantined row."""
    value = '"' + "linha\n" * 1_500_000 + 'fim"'
    return lines(VENDAS_HEADER, vrow(1, cliente=value), vrow(2, uf="XX"))


def _gzip_of(text: str) -> Callable[[], bytes]:
    return lambda: gzip.compress(text.encode(), mtime=0)


def _truncated_gzip() -> bytes:
    text = lines(VENDAS_HEADER, *(vrow(i) for i in range(1, 3_001)))
    whole = gzip.compress(text.encode(), mtime=0)
    return whole[: len(whole) // 2]


def _missing(path_name: str) -> Builder:
    """A builder that returns a path that does not exist."""

    def build(directory: Path) -> Path:
        return directory / path_name

    return build


# Small reusable files ------------------------------------------------------------------------
_ACCENTED = lines(
    VENDAS_HEADER,
    vrow(1, cliente="João Conceição", produto="Pão de Açúcar", categoria="Alimentação"),
    vrow(2, cliente="Zoë Müller", produto="Crème brûlée", categoria="Doces", uf="RJ"),
)
_ACCENTED_VALUES: dict[tuple[int, str], str] = {
    (0, "cliente"): "João Conceição",
    (0, "produto"): "Pão de Açúcar",
    (0, "categoria"): "Alimentação",
    (1, "cliente"): "Zoë Müller",
    (1, "produto"): "Crème brûlée",
}
_GZ_SOURCE = lines(VENDAS_HEADER, vrow(1), vrow(2), vrow(2), vrow(3, uf="ZZ"), vrow(4))
_ALL_REQUIRED_MISSING = "; ".join(f"{c}: required value missing" for c in VENDAS_COLUMNS)
_NOT_A_DATE = "data_venda: not a date (YYYY-MM-DD or DD/MM/YYYY) ('{}')"
_NOT_A_DECIMAL = "preco_unitario: not a decimal number ('{}')"
_NOT_AN_INTEGER = "id_venda: not an integer ('{}')"

NOT_TEXT = "not a text file"
MISSING = "missing required column"
NO_HEADER = "no header"


def _ok(**kwargs: object) -> Expected:
    return Expected(exit_code=PROCESSED, **kwargs)  # type: ignore[arg-type]


def _rejected(*substrings: str, **kwargs: object) -> Expected:
    return Expected(exit_code=REJECTED, stderr_has=substrings, **kwargs)  # type: ignore[arg-type]


CASES: tuple[Case, ...] = (
    # ---------------------------------------------------------------- nothing to read
    Case(
        "empty_file",
        write_bytes("zero_bytes.csv", b""),
        "vendas",
        _rejected("empty"),
        "A 0-byte upload (e.g. a failed export) is not a table: reject it, say it is empty.",
        via_subprocess=True,
    ),
    Case(
        "whitespace_only",
        write_bytes("blank.csv", b"   \n\t\n\r\n  \r\n\n \r \n"),
        "vendas",
        _rejected("empty"),
        "Blank lines are not rows; a file of nothing but whitespace is empty.",
    ),
    # ---------------------------------------------------------------- not text
    Case(
        "random_bytes",
        write_bytes("random.csv", _random_bytes),
        "vendas",
        _rejected(NOT_TEXT),
        "Binary garbage named .csv must be refused as a whole, not parsed into junk rows.",
        via_subprocess=True,
    ),
    Case(
        "png_image",
        write_bytes("photo.csv", _png_bytes),
        "vendas",
        _rejected(NOT_TEXT),
        "An image uploaded by mistake is not text (its chunk lengths contain NUL bytes).",
    ),
    Case(
        "zip_archive",
        write_bytes("vendas.zip.csv", _zip_bytes),
        "vendas",
        _rejected(NOT_TEXT),
        "Only gzip is unwrapped; a zip (even of a valid CSV) is binary and refused.",
    ),
    Case(
        "nul_byte_in_valid_csv",
        write_bytes(
            "nul.csv",
            lines(VENDAS_HEADER, vrow(1), vrow(2, cliente="An\x00a"), vrow(3)).encode(),
        ),
        "vendas",
        _rejected(NOT_TEXT),
        "Any NUL outside UTF-16 means the file is not text: reject the whole file.",
    ),
    Case(
        "utf16le_without_bom",
        write_text("utf16_nobom.csv", lines(VENDAS_HEADER, vrow(1)), "utf-16-le"),
        "vendas",
        _rejected(NOT_TEXT),
        "UTF-16 is only recognised by its BOM; without one its NUL bytes make it not text.",
    ),
    Case(
        "truncated_gzip",
        write_bytes("cut.csv.gz", _truncated_gzip),
        "vendas",
        Expected(exit_code=REJECTED, stderr_any=(NOT_TEXT, "gzip", "corrupt")),
        "A gzip cut in half (interrupted upload) is a broken file: reject it whole, even "
        "though its first half decompresses into valid rows, and leave no partial outputs.",
    ),
    Case(
        "nul_byte_after_nine_megabytes",
        write_bytes("late_nul.csv", _nul_after_megabytes),
        "vendas",
        _rejected(NOT_TEXT),
        "A NUL far into the file (after rows were already read and written to temporary "
        "outputs) still rejects the file as a whole, and no partial output survives.",
    ),
    Case(
        "gzip_of_an_image",
        write_bytes("photo.csv.gz", lambda: gzip.compress(_png_bytes(), mtime=0)),
        "vendas",
        _rejected(NOT_TEXT),
        "Decompressing does not make binary content a table.",
    ),
    Case(
        "gzip_compressed_twice",
        write_bytes(
            "twice.csv.gz",
            lambda: gzip.compress(gzip.compress(lines(VENDAS_HEADER, vrow(1)).encode(), mtime=0)),
        ),
        "vendas",
        _rejected(NOT_TEXT),
        "Only one gzip layer is unwrapped; what is inside the first is gzip bytes, not text.",
    ),
    # ---------------------------------------------------------------- no usable header
    Case(
        "missing_required_column",
        write_text(
            "no_state_col.csv",
            lines(",".join(VENDAS_COLUMNS[:-1]), ",".join(vrow(1).split(",")[:-1])),
        ),
        "vendas",
        _rejected(f"{MISSING} `uf`"),
        "The user must learn which column to add, named exactly.",
        via_subprocess=True,
    ),
    Case(
        "two_required_columns_missing",
        write_text(
            "two_cols_short.csv",
            lines(
                "id_venda,data_venda,cliente,produto,quantidade,preco_unitario,valor_total",
                "1,2024-01-15,Ana,Caneta,2,10.50,21.00",
            ),
        ),
        "vendas",
        _rejected(MISSING, "`categoria`", "`uf`"),
        "Every missing required column is named, so one fix is enough.",
    ),
    Case(
        "no_header_data_on_line_1",
        write_text("noheader.csv", lines(vrow(1), vrow(2))),
        "vendas",
        _rejected(NO_HEADER, "`id_venda`"),
        "A headerless export reads its first data row as a header: no contract column is found.",
    ),
    Case(
        "html_page_renamed_csv",
        write_text(
            "page.csv",
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
            "<body><h1>Not Found</h1><p>The requested URL, sorry, was not found.</p></body>\n"
            "</html>\n",
        ),
        "vendas",
        _rejected(NO_HEADER),
        "An error page saved as .csv is text but not this table.",
    ),
    Case(
        "json_document_renamed_csv",
        write_text(
            "data.csv",
            '[\n  {\n    "id_venda": 1,\n    "data_venda": "2024-01-15",\n    "uf": "SP"\n'
            "  }\n]\n",
        ),
        "vendas",
        _rejected(NO_HEADER),
        "A JSON export named .csv is text but has no CSV header with the contract columns.",
    ),
    Case(
        "single_10mb_line_without_newline",
        write_bytes("oneline.csv", lambda: b"x" * TEN_MB),
        "vendas",
        _rejected(NO_HEADER, "`id_venda`", stderr_max_chars=1_000),
        "One 10 MB line is a header with one unknown column: rejected with a short human "
        "line (the 10 MB name is not echoed back), without exhausting memory.",
    ),
    Case(
        "contract_column_twice",
        write_text(
            "dup_contract_col.csv",
            lines(VENDAS_HEADER + ",cliente", vrow(1) + ",Bia"),
        ),
        "vendas",
        _rejected("cliente"),
        "Two `cliente` columns: which one is meant is unknowable, so reject and name it.",
    ),
    Case(
        "contract_column_twice_after_normalising",
        write_text(
            "dup_normalised_col.csv",
            lines(VENDAS_HEADER + ',"Preço Unitário"', vrow(1) + ",10.50"),
        ),
        "vendas",
        _rejected("preco_unitario"),
        "`Preço Unitário` normalises to `preco_unitario`, already present: same ambiguity.",
    ),
    # ---------------------------------------------------------------- header edge cases
    Case(
        "header_only",
        write_text("header_only.csv", lines(VENDAS_HEADER)),
        "vendas",
        _ok(
            input_rows=0,
            exported=0,
            quarantined=0,
            duplicates=0,
            csv_header=VENDAS_COLUMNS,
            report={"encoding": "utf-8", "delimiter": ","},
        ),
        "A day with no sales is a valid, empty result, not an error.",
    ),
    Case(
        "header_then_blank_lines",
        write_bytes("header_blank.csv", (VENDAS_HEADER + "\n\n   \r\n\t\n\r\n\n").encode()),
        "vendas",
        _ok(input_rows=0, exported=0, quarantined=0, duplicates=0, csv_header=VENDAS_COLUMNS),
        "Trailing blank lines (a common editor artefact) are not rows.",
    ),
    Case(
        "unknown_column_twice",
        write_text("dup_obs.csv", lines(VENDAS_HEADER + ",obs,obs", vrow(1) + ",a,b")),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            ignored_columns=frozenset({"obs"}),
            csv_header=VENDAS_COLUMNS,
        ),
        "Columns outside the contract are ignored, even when repeated.",
    ),
    Case(
        "quoted_headers_with_accents_and_spaces",
        write_text(
            "headers.csv",
            lines(
                '"ID Venda","Data Venda"," Cliente ","PRODUTO","Categoria","Quantidade",'
                '"Preço Unitário","Valor-Total","UF"',
                vrow(1),
            ),
        ),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            csv_header=VENDAS_COLUMNS,
            ignored_columns=frozenset(),
            json_values={(0, "preco_unitario"): 10.5, (0, "id_venda"): 1},
        ),
        "Spreadsheet-style headers match the contract after normalisation.",
    ),
    Case(
        "twenty_thousand_columns",
        write_text("wide.csv", _columns_20000),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_header=VENDAS_COLUMNS,
            ignored_count=20_000 - len(VENDAS_COLUMNS),
            json_values={(0, "id_venda"): 1, (1, "id_venda"): 2, (1, "uf"): "SP"},
        ),
        "A very wide export still finds its contract columns wherever they are.",
    ),
    # ---------------------------------------------------------------- record structure
    Case(
        "ragged_rows",
        write_text(
            "ragged.csv",
            lines(
                VENDAS_HEADER,  # 1
                vrow(1),  # 2
                vrow(5) + ",extra",  # 3: 10 fields
                vrow(6)[: -len(",SP")],  # 4: 8 fields
                vrow(5),  # 5: id 5 is free: the ragged row 3 takes no part in id checks
                "oops,again",  # 6: 2 fields
                "oops,again",  # 7: same text, but not a duplicate: ragged rows are not
            ),
        ),
        "vendas",
        _ok(
            input_rows=6,
            exported=2,
            quarantined=4,
            duplicates=0,
            rejected={
                3: "row: has 10 fields, the header has 9",
                4: "row: has 8 fields, the header has 9",
                6: "row: has 2 fields, the header has 9",
                7: "row: has 2 fields, the header has 9",
            },
            rejected_raw={
                3: vrow(5) + ",extra",
                4: vrow(6)[: -len(",SP")],
                6: "oops,again",
            },
            json_values={(0, "id_venda"): 1, (1, "id_venda"): 5},
        ),
        "A misaligned row must never shift values into the wrong columns: quarantine it with "
        "its raw text so it can be fixed by hand.",
        via_subprocess=True,
    ),
    Case(
        "unterminated_quote_mid_file",
        write_text(
            "open_quote.csv",
            lines(
                VENDAS_HEADER,  # 1
                vrow(1),  # 2
                vrow(2),  # 3
                '3,2024-01-15,"Ana,Caneta,Papelaria,2,10.50,21.00,SP',  # 4: opens, never closes
                vrow(4),  # 5: swallowed
                vrow(5),  # 6: swallowed
            ),
        ),
        "vendas",
        _ok(
            input_rows=3,
            exported=2,
            quarantined=1,
            duplicates=0,
            rejected={4: "row: unterminated quoted field"},
            json_values={(0, "id_venda"): 1, (1, "id_venda"): 2},
        ),
        "Rows before a broken quote are kept; the open quote swallows the rest into one "
        "quarantined row instead of crashing or losing the run.",
    ),
    Case(
        "mixed_newlines",
        write_bytes("newlines.csv", _mixed_newlines),
        "vendas",
        _ok(
            input_rows=5,
            exported=3,
            quarantined=2,
            duplicates=0,
            rejected={
                3: "uf: not a Brazilian state code ('XX')",
                6: "quantidade: below the minimum 1 ('0')",
            },
            json_values={(0, "id_venda"): 1, (1, "id_venda"): 3, (2, "id_venda"): 5},
            failures={"uf": {"allowed": 1}, "quantidade": {"min": 1}},
        ),
        "\\n, \\r\\n and lone \\r in one file are all line ends, and `_line` points the user at "
        "the physical line to fix.",
    ),
    Case(
        "quoted_field_spanning_lines",
        write_text(
            "multiline.csv",
            lines(
                VENDAS_HEADER,  # 1
                vrow(1, cliente='"Ana\nMaria"'),  # 2-3
                vrow(2, uf="XX"),  # 4
            ),
        ),
        "vendas",
        _ok(
            input_rows=2,
            exported=1,
            quarantined=1,
            duplicates=0,
            rejected={4: "uf: not a Brazilian state code ('XX')"},
            csv_values={(0, "cliente"): "Ana\nMaria"},
            json_values={(0, "cliente"): "Ana\nMaria"},
        ),
        "A quoted newline is data, and `_line` counts physical lines, not records.",
    ),
    Case(
        "quoted_field_of_nine_megabytes_spanning_lines",
        write_text("huge_quoted.csv", _huge_multiline_quoted_field),
        "vendas",
        _ok(
            input_rows=2,
            exported=1,
            quarantined=1,
            duplicates=0,
            rejected={2 + 1_500_000 + 1: "uf: not a Brazilian state code ('XX')"},
            csv_value_lengths={(0, "cliente"): len("linha\n") * 1_500_000 + len("fim")},
        ),
        "One record bigger than any read buffer, over 1.5 million physical lines: kept whole, "
        "and the next row's `_line` still counts every physical line.",
    ),
    Case(
        "stray_quote_inside_unquoted_field",
        write_text(
            "inch.csv",
            lines(
                VENDAS_HEADER,  # 1
                vrow(1, produto='TV 32"', categoria="Eletro"),  # 2: an inch mark, not a quote
                vrow(2),  # 3
                vrow(3, uf="XX"),  # 4
            ),
        ),
        "vendas",
        _ok(
            input_rows=3,
            exported=2,
            quarantined=1,
            duplicates=0,
            rejected={4: "uf: not a Brazilian state code ('XX')"},
            csv_values={(0, "produto"): 'TV 32"'},
            json_values={(0, "produto"): 'TV 32"', (1, "id_venda"): 2},
        ),
        "A `\"` that does not start a field opens no quoted field (as in Python's csv, "
        "pyarrow, Excel): product names with inch marks must not swallow the rest of the file.",
    ),
    Case(
        "blank_lines_before_header",
        write_text("lead_blank.csv", "\n  \n" + lines(VENDAS_HEADER, vrow(1), vrow(2, uf="XX"))),
        "vendas",
        _ok(
            input_rows=2,
            exported=1,
            quarantined=1,
            duplicates=0,
            rejected={5: "uf: not a Brazilian state code ('XX')"},
        ),
        "Blank lines are not rows, even before the header; `_line` stays the physical line "
        "the user sees in an editor.",
    ),
    Case(
        "escaped_quotes_and_quoted_delimiters",
        write_text(
            "quotes.csv",
            lines(VENDAS_HEADER, vrow(1, cliente='"Ana ""A"" Silva"', produto='"Caneta, azul"')),
        ),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            csv_values={(0, "cliente"): 'Ana "A" Silva', (0, "produto"): "Caneta, azul"},
            json_values={(0, "cliente"): 'Ana "A" Silva', (0, "produto"): "Caneta, azul"},
        ),
        "RFC 4180 quoting round-trips: doubled quotes and quoted commas survive.",
    ),
    Case(
        "row_of_only_delimiters",
        write_text("commas.csv", lines(VENDAS_HEADER, vrow(1), ",,,,,,,,", ",,,,,,,,")),
        "vendas",
        _ok(
            input_rows=3,
            exported=1,
            quarantined=1,
            duplicates=1,
            rejected={3: _ALL_REQUIRED_MISSING},
            failures={c: {"required": 1} for c in VENDAS_COLUMNS},
        ),
        "A row of empty fields has the right shape but no values: every required column is "
        "reported missing; the same row again is a duplicate whatever its validity.",
    ),
    Case(
        "near_duplicates_differing_in_spaces_or_quoting",
        write_text(
            "near_dups.csv",
            lines(
                VENDAS_HEADER,  # 1
                vrow(1),  # 2
                vrow(1, uf=" SP"),  # 3: not the same strings: same id, different content
                '"1","2024-01-15","Ana","Caneta","Papelaria","2","10.50","21.00","SP"',  # 4
            ),
        ),
        "vendas",
        _ok(
            input_rows=3,
            exported=1,
            quarantined=1,
            duplicates=1,
            rejected={3: "id_venda: id already used by an earlier row ('1')"},
        ),
        "Duplicates are rows whose values are exactly the same strings: quoting does not "
        "change a value (line 4 is a duplicate), a leading space does (line 3 reuses the id).",
    ),
    # ---------------------------------------------------------------- huge values
    Case(
        "two_mb_string_field",
        write_text(
            "big_field.csv",
            lambda: lines(VENDAS_HEADER, vrow(1, cliente="A" * TWO_MB), vrow(2)),
        ),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_value_lengths={(0, "cliente"): TWO_MB},
            csv_values={(1, "cliente"): "Ana"},
        ),
        "A 2 MB value in a string column is data, carried through whole (no length limit "
        "in the contract) and does not break the rows after it.",
    ),
    Case(
        "two_mb_field_in_ignored_column",
        write_text(
            "big_ignored.csv",
            lambda: lines(
                VENDAS_HEADER + ",observacao", vrow(1) + "," + "B" * TWO_MB, vrow(2) + ",ok"
            ),
        ),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            ignored_columns=frozenset({"observacao"}),
            csv_header=VENDAS_COLUMNS,
        ),
        "A huge value in a column nobody asked for is skipped, not a failure.",
    ),
    Case(
        "ten_mb_last_row_without_newline",
        write_text(
            "big_last.csv",
            lambda: lines(
                VENDAS_HEADER, vrow(1), vrow(2, produto="P" * TEN_MB), final_newline=False
            ),
        ),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_value_lengths={(1, "produto"): TEN_MB},
        ),
        "A 10 MB final line with no newline is still a complete row.",
    ),
    # ---------------------------------------------------------------- values
    Case(
        "integer_beyond_int64",
        write_text(
            "int64.csv",
            lines(
                VENDAS_HEADER,
                vrow(INT64_MAX),  # 2: fits
                vrow(INT64_MAX + 1),  # 3
                vrow(INT64_MIN - 1),  # 4
                vrow(INT64_MIN),  # 5: fits
                vrow("99999999999999999999999"),  # 6
            ),
        ),
        "vendas",
        _ok(
            input_rows=5,
            exported=2,
            quarantined=3,
            duplicates=0,
            rejected={
                3: _NOT_AN_INTEGER.format(INT64_MAX + 1),
                4: _NOT_AN_INTEGER.format(INT64_MIN - 1),
                6: _NOT_AN_INTEGER.format("99999999999999999999999"),
            },
            json_values={(0, "id_venda"): INT64_MAX, (1, "id_venda"): INT64_MIN},
            csv_values={(0, "id_venda"): str(INT64_MAX), (1, "id_venda"): str(INT64_MIN)},
            failures={"id_venda": {"type": 3}},
        ),
        "An id that does not fit Int64 must be flagged, never wrapped or rounded; the limits "
        "themselves are exact in CSV and JSON.",
    ),
    Case(
        "impossible_dates",
        write_text(
            "dates.csv",
            lines(
                VENDAS_HEADER,
                vrow(1, data="31/02/2024"),  # 2
                vrow(2, data="2024-02-30"),  # 3
                vrow(3, data="29/02/2023"),  # 4: 2023 is not a leap year
                vrow(4, data="2024-13-01"),  # 5
                vrow(5, data="15/01/24"),  # 6: two-digit year is neither format
                vrow(6, data="29/02/2024"),  # 7: real
                vrow(7, data="2024-02-29"),  # 8: real
            ),
        ),
        "vendas",
        _ok(
            input_rows=7,
            exported=2,
            quarantined=5,
            duplicates=0,
            rejected={
                2: _NOT_A_DATE.format("31/02/2024"),
                3: _NOT_A_DATE.format("2024-02-30"),
                4: _NOT_A_DATE.format("29/02/2023"),
                5: _NOT_A_DATE.format("2024-13-01"),
                6: _NOT_A_DATE.format("15/01/24"),
            },
            csv_values={(0, "data_venda"): "2024-02-29", (1, "data_venda"): "2024-02-29"},
            json_values={(0, "data_venda"): "2024-02-29"},
            failures={"data_venda": {"type": 5}},
        ),
        "Parsers that roll 31/02 over to March would corrupt sales dates silently.",
    ),
    Case(
        "nan_inf_and_overflow_in_decimal",
        write_text(
            "nan.csv",
            lines(
                VENDAS_HEADER,
                vrow(1, quantidade="1", preco="NaN", total="1.00"),  # 2
                vrow(2, quantidade="1", preco="inf", total="1.00"),  # 3
                vrow(3, quantidade="1", preco="-Infinity", total="1.00"),  # 4
                vrow(4, quantidade="1", preco="1e309", total="1.00"),  # 5
                vrow(5),  # 6
            ),
        ),
        "vendas",
        _ok(
            input_rows=5,
            exported=1,
            quarantined=4,
            duplicates=0,
            rejected_first_error={
                2: _NOT_A_DECIMAL.format("NaN"),
                3: _NOT_A_DECIMAL.format("inf"),
                4: _NOT_A_DECIMAL.format("-Infinity"),
                5: _NOT_A_DECIMAL.format("1e309"),
            },
            failures={"preco_unitario": {"type": 4}},
        ),
        "NaN and infinities are not money (and Power BI refuses NaN).",
    ),
    Case(
        "formula_like_strings",
        write_text(
            "formulas.csv",
            lines(
                VENDAS_HEADER,
                vrow(1, cliente="=cmd|' /C calc'!A0", produto="+SUM(A1:A2)", categoria="@SUM(1)"),
                vrow(2, cliente='"=HYPERLINK(""http://x"",""y"")"', produto="-2+3"),
            ),
        ),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_values={
                (0, "cliente"): "=cmd|' /C calc'!A0",
                (0, "produto"): "+SUM(A1:A2)",
                (0, "categoria"): "@SUM(1)",
                (1, "cliente"): '=HYPERLINK("http://x","y")',
                (1, "produto"): "-2+3",
            },
            json_values={(0, "cliente"): "=cmd|' /C calc'!A0", (1, "produto"): "-2+3"},
        ),
        "The pipeline is a data pipe, not a spreadsheet: values pass through unchanged.",
    ),
    Case(
        "ansi_escapes_and_control_characters",
        write_text(
            "control.csv",
            lines(
                VENDAS_HEADER,
                vrow(1, cliente="\x1b[31mRed\x1b[0m", produto="a\tb", categoria="x\x07y\x7fz\x08w"),
            ),
        ),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            csv_values={
                (0, "cliente"): "\x1b[31mRed\x1b[0m",
                (0, "produto"): "a\tb",
                (0, "categoria"): "x\x07y\x7fz\x08w",
            },
            json_values={
                (0, "cliente"): "\x1b[31mRed\x1b[0m",
                (0, "categoria"): "x\x07y\x7fz\x08w",
            },
        ),
        "Control characters inside a value are data; they must not break parsing or output.",
    ),
    # ---------------------------------------------------------------- encodings
    Case(
        "utf8_with_bom",
        write_text("bom.csv", "\ufeff" + _ACCENTED),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_header=VENDAS_COLUMNS,
            csv_values=_ACCENTED_VALUES,
            report={"encoding": "utf-8-sig"},
        ),
        "Excel's 'CSV UTF-8' adds a BOM; it must not glue itself onto `id_venda`.",
    ),
    Case(
        "utf16_le_with_bom",
        write_text("u16le.csv", "\ufeff" + _ACCENTED, "utf-16-le"),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_values=_ACCENTED_VALUES,
            report={"encoding": "utf-16"},
        ),
        "Excel's 'Unicode text' is UTF-16 LE with a BOM; its NULs are not binary.",
    ),
    Case(
        "utf16_be_with_bom",
        write_text("u16be.csv", "\ufeff" + _ACCENTED, "utf-16-be"),
        "vendas",
        _ok(
            input_rows=2,
            exported=2,
            quarantined=0,
            duplicates=0,
            csv_values=_ACCENTED_VALUES,
            report={"encoding": "utf-16"},
        ),
        "The big-endian BOM is honoured as well.",
    ),
    Case(
        "windows_1252_accents",
        write_text(
            "cp1252.csv",
            lines(
                VENDAS_HEADER,
                vrow(
                    1,
                    cliente="João Conceição",
                    produto="Café € – “especial”",
                    categoria="Açougue",
                ),
            ),
            "cp1252",
        ),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            csv_values={
                (0, "cliente"): "João Conceição",
                (0, "produto"): "Café € – “especial”",
                (0, "categoria"): "Açougue",
            },
            json_values={(0, "cliente"): "João Conceição"},
            report={"encoding": "windows-1252"},
        ),
        "Brazilian Excel saves Windows-1252: accents (and €, dashes, curly quotes) must come "
        "out right in the UTF-8 output, not as mojibake.",
    ),
    Case(
        "windows_1252_undefined_bytes_as_latin1",
        write_bytes(
            "undefined.csv",
            lines(VENDAS_HEADER, vrow(1, produto="A\x81B\x8dC\x8fD\x90E\x9dF")).encode("latin-1"),
        ),
        "vendas",
        _ok(
            input_rows=1,
            exported=1,
            quarantined=0,
            duplicates=0,
            csv_values={(0, "produto"): "A\x81B\x8dC\x8fD\x90E\x9dF"},
            report={"encoding": "windows-1252"},
        ),
        "Bytes Windows-1252 leaves undefined decode as Latin-1 instead of crashing the decoder.",
    ),
    Case(
        "invalid_utf8_late_in_file",
        write_bytes("late.csv", _late_invalid_utf8),
        "vendas",
        _ok(
            input_rows=20_001,
            exported=20_001,
            quarantined=0,
            duplicates=0,
            csv_values={
                (0, "cliente"): "Cliente 1",
                (20_000, "cliente"): "Conceição",
                (20_000, "produto"): "Pão",
            },
            report={"encoding": "windows-1252"},
        ),
        "A Windows-1252 byte after 1.3 MB of ASCII (past any sniffing window) must switch the "
        "decoding, not crash the run or drop the row.",
    ),
    Case(
        "semicolon_delimiter_brazilian_decimals",
        write_text(
            "br.csv",
            lines(
                VENDAS_HEADER.replace(",", ";"),
                vrow(1, data="15/01/2024", preco="1.234,56", total="2.469,12", uf="sp", sep=";"),
                vrow(2, data="05/03/2024", quantidade="3", preco="R$ 10,50", total="R$ 31,50",
                     uf="RJ", sep=";"),
                vrow(3, data="2024-12-31", quantidade="1", preco="1234,5", total="1234,50",
                     uf="MG", sep=";"),
                vrow(4, quantidade="1", preco="1.234", total="1.234", sep=";"),
                vrow(5, quantidade="1", preco="0,00", total="0", sep=";"),
            ),
        ),
        "vendas",
        _ok(
            input_rows=5,
            exported=5,
            quarantined=0,
            duplicates=0,
            report={"delimiter": ";"},
            json_values={
                (0, "preco_unitario"): 1234.56,
                (0, "valor_total"): 2469.12,
                (0, "uf"): "SP",
                (0, "data_venda"): "2024-01-15",
                (1, "preco_unitario"): 10.5,
                (1, "valor_total"): 31.5,
                (1, "data_venda"): "2024-03-05",
                (2, "preco_unitario"): 1234.5,
                (3, "preco_unitario"): 1.234,
            },
            csv_values={
                (0, "data_venda"): "2024-01-15",
                (0, "uf"): "SP",
                (1, "data_venda"): "2024-03-05",
            },
            csv_numbers={
                (0, "preco_unitario"): 1234.56,
                (1, "valor_total"): 31.5,
                (2, "preco_unitario"): 1234.5,
            },
        ),
        "The Brazilian Excel export (`;`, `1.234,56`, `R$`, DD/MM/YYYY) comes out as `.` "
        "decimals and ISO dates.",
    ),
    Case(
        "clientes_cp1252_semicolon_required_only",
        write_text(
            "clientes.csv",
            lines(
                "Idade;Gênero;Renda Mensal",
                "30;masculino;R$ 1.234,56",  # 2
                "40;FEMININO;2500",  # 3
                "130;x;-1",  # 4
                "25; o ;0",  # 5
            ),
            "cp1252",
        ),
        "clientes",
        _ok(
            input_rows=4,
            exported=3,
            quarantined=1,
            duplicates=0,
            rejected={
                4: "idade: above the maximum 120 ('130'); "
                "genero: not a known gender (M, F, O, masculino, feminino, outro) ('x'); "
                "renda_mensal: below the minimum 0 ('-1')"
            },
            csv_header=("idade", "genero", "renda_mensal"),
            json_values={
                (0, "genero"): "M",
                (0, "renda_mensal"): 1234.56,
                (1, "genero"): "F",
                (2, "genero"): "O",
                (2, "idade"): 25,
            },
            missing_optional=CLIENTES_OPTIONAL,
            report={"encoding": "windows-1252", "delimiter": ";"},
            failures={"idade": {"max": 1}, "genero": {"allowed": 1}, "renda_mensal": {"min": 1}},
        ),
        "The prototype's customer export with only the required columns, accented header, "
        "aliases and every failure of a row listed in contract order.",
    ),
    Case(
        "gzip_compressed_csv",
        write_bytes("vendas_gz.csv.gz", _gzip_of(_GZ_SOURCE)),
        "vendas",
        _ok(
            input_rows=5,
            exported=3,
            quarantined=1,
            duplicates=1,
            rejected={5: "uf: not a Brazilian state code ('ZZ')"},
            json_values={(0, "id_venda"): 1, (1, "id_venda"): 2, (2, "id_venda"): 4},
            report={"encoding": "utf-8"},
        ),
        "A gzipped upload is processed exactly like the plain file it contains.",
    ),
    # ---------------------------------------------------------------- usage errors
    Case(
        "nonexistent_input_path",
        _missing("no_such_file.csv"),
        "vendas",
        Expected(exit_code=USAGE, stderr_has=("no_such_file.csv",)),
        "A typo in the path is a usage error that names the path, not a crash.",
    ),
    Case(
        "unknown_contract",
        write_text("vendas_for_nope.csv", lines(VENDAS_HEADER, vrow(1))),
        "nope_not_a_contract",
        Expected(exit_code=USAGE, stderr_has=("nope_not_a_contract",)),
        "A contract name that does not exist is a usage error that names it.",
    ),
)

CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"


def build_case(case: Case, directory: Path) -> Path:
    """Build one case's file into `directory` (created if needed) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    return case.build(directory)


def build_all(directory: Path) -> dict[str, Path]:
    """Build every case into its own sub-directory (handy for poking the engine by hand)."""
    return {case.name: build_case(case, directory / case.name) for case in CASES}


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/hostile_corpus.py DIR
    import sys

    for name, path in build_all(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")).items():
        print(f"{name}: {path}")
