"""Hypothesis strategies for the reader-and-cleaner property test (tests/test_properties.py).

A generated file starts as a table of TYPED values drawn for a contract (ints, decimals,
dates, strings, allowed values), then each value is written in one of the spellings
docs/processing.md accepts for its type, the file in one of the encodings, delimiters,
newline styles and header spellings it accepts. The expected outcome of every row (exported
with these values, quarantined, or dropped as a duplicate) follows from how the row was
built, never from asking the engine: the only code shared with `processing` is the contract
loader, which reads the TOML the test is about.

What is deliberately not generated, because the documented rules make it ambiguous:
- in a Windows-1252 file, a value whose bytes also happen to be valid UTF-8 (`Ã©` is the
  UTF-8 spelling of `é`): the engine tries UTF-8 first, by design;
- free strings that start or end with a character only some readings of "whitespace"
  include (U+001C-U+001F are whitespace to Python, not to Unicode): values are padded with
  whitespace every reading agrees on, and that padding is expected to be trimmed;
- spellings the docs do not list (`1e3`, `.5`), and negative amounts with `R$`.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from processing.contract import ColumnSpec, Contract, load_contract

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CONTRACTS = ("vendas", "clientes")
# file encoding -> what the report says (cp1252 only once a non-ASCII byte needed it)
ENCODINGS = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "utf-16-le": "utf-16",
    "utf-16-be": "utf-16",
    "cp1252": "windows-1252",
}
DELIMITERS = (",", ";")
NEWLINES = ("\n", "\r\n", "\r")
CHUNK_SIZES = (64, 300, 4096, 4 * 1024 * 1024)  # tiny chunks cut records across reads

# Whitespace that every reading of "trim" agrees on (Unicode White_Space and str.isspace).
PADDING = {"any": " \t\n\r\xa0\x0b\x0c\x85\u2003\u3000\u2028", "cp1252": " \t\n\r\xa0\x0b\x0c"}
# Characters that stress the CSV layer, mixed into free strings more often than chance would.
SPECIALS = ['"', ",", ";", "\n", "\r", "\r\n", " ", "'", "ç", "Ã", "€", "º", "\t", "R$"]
TRICKY_WORDS = ["NA", "null", "NaN", "N/A", "-", "0", "None", '""', "TV 32\"", "#N/D"]
BLANK_LINES = ("", " ", "\t", "  \t ")
# how often each kind of row is drawn (a reused id needs an earlier row with an id)
ROW_KINDS = ("valid",) * 5 + ("invalid", "duplicate", "reused_id", "reused_id", "ragged")
EXTRA_COLUMNS = ("Observação", "extra", "", "Comentário Livre")
# header words that contracts spell without their accent
ACCENTED = {
    "preco": "preço", "unitario": "unitário", "numero": "número", "genero": "gênero",
    "medio": "médio", "cliente": "clienté",
}


def _cp1252_alphabet() -> str:
    chars = []
    for byte in range(1, 256):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            continue  # the five bytes cp1252 leaves undefined
    return "".join(chars)


CP1252_CHARS = _cp1252_alphabet()


def fold(text: str) -> str:
    """Lower-case without accents (the docs' "ignoring case and accents")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def header_key(text: str) -> str:
    """docs/processing.md's header normalisation, written out again for the test."""
    out, gap = [], False
    for ch in fold(text.strip()):
        if ch.isascii() and ch.isalnum():
            if gap and out:
                out.append("_")
            out.append(ch)
            gap = False
        else:
            gap = True
    return "".join(out)


def unambiguous(text: str, encoding: str) -> bool:
    """Whether `text` written in `encoding` reads back as itself under the documented rules.

    Windows-1252 bytes are only recognised as such when they are not valid UTF-8; a value's
    neighbours in the file are ASCII (delimiter, quote, newline), so checking each value on
    its own is enough for every chunk that holds it.
    """
    if encoding != "cp1252":
        return "\x00" not in text
    try:
        data = text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# --- one value: typed, then spelled ------------------------------------------------------------
def pick(draw: st.DrawFn, options: Sequence[Any]) -> Any:
    """`draw(st.sampled_from(options))` without building a strategy per call (building
    strategy objects, not drawing, was most of the time spent generating a file)."""
    return options[draw(st.integers(0, len(options) - 1))]


def _json_value(spec: ColumnSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "decimal":
        return float(value)
    if spec.type == "date":
        return value.isoformat()
    return value


def _bounds(spec: ColumnSpec, default: tuple[int, int]) -> tuple[int, int]:
    low = default[0] if spec.min is None else int(spec.min)
    high = default[1] if spec.max is None else int(spec.max)
    return low, high


def int_spelling(draw: st.DrawFn, value: int) -> str:
    """Optional sign and digits: `7`, `+7`, `007`, `-07`."""
    digits = "0" * draw(st.integers(0, 2)) + str(abs(value))
    if value < 0:
        return "-" + digits
    return pick(draw, ["", "+"]) + digits


def decimal_spelling(draw: st.DrawFn, value: Decimal) -> str:
    """`1234.5`, `1234,50`, `1.234,50`, `R$ 1.234,50` (sign before a plain number only)."""
    negative = value < 0
    places = max(0, -value.as_tuple().exponent)  # type: ignore[operator]
    whole, fraction = divmod(abs(value), 1)
    whole_digits = str(int(whole))
    frac_digits = str(fraction)[2:] if places else ""
    comma_frac = frac_digits or "0" * draw(st.integers(1, 2))
    grouped = f"{int(whole):,}".replace(",", ".")
    forms = {
        "dot": whole_digits + (f".{frac_digits}" if frac_digits else ""),
        "comma": f"{whole_digits},{comma_frac}",
        "grouped": f"{grouped},{comma_frac}",
    }
    form = pick(draw, sorted(forms))
    if not negative and draw(st.booleans()):
        return "R$ " + forms[form]
    sign = "-" if negative else pick(draw, ["", "+"])
    return sign + forms[form]


def date_spelling(draw: st.DrawFn, value: dt.date) -> str:
    if draw(st.booleans()):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def case_variant(draw: st.DrawFn, text: str) -> str:
    """The same word in another case, with or without its accents."""
    if draw(st.booleans()):
        text = "".join(
            ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
        )
    style = pick(draw, ["same", "lower", "upper", "title", "mixed"])
    if style == "mixed":
        flips = draw(st.integers(0, 2 ** len(text) - 1))
        return "".join(c.upper() if flips >> i & 1 else c.lower() for i, c in enumerate(text))
    styles = {"same": text, "lower": text.lower(), "upper": text.upper(), "title": text.title()}
    return styles[style]


def allowed_spellings(spec: ColumnSpec) -> dict[Any, list[str]]:
    """Every allowed value with the spellings that mean it (itself and its aliases)."""
    spellings: dict[Any, list[str]] = {value: [str(value)] for value in spec.allowed}
    for alias, target in spec.aliases.items():
        spellings.setdefault(target, []).append(alias)
    return spellings


@functools.cache
def free_text(encoding: str) -> st.SearchStrategy[str]:
    """A non-empty string with no whitespace at either end; CSV-hostile characters often."""
    if encoding == "cp1252":
        chars = st.sampled_from(CP1252_CHARS)
    else:
        chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    pieces = st.lists(st.one_of(chars, chars, st.sampled_from(SPECIALS)), min_size=1, max_size=12)
    text = st.one_of(pieces.map("".join), st.sampled_from(TRICKY_WORDS))
    return text.filter(lambda s: s != "" and not s[0].isspace() and not s[-1].isspace())


@functools.cache
def padding(encoding: str) -> st.SearchStrategy[str]:
    alphabet = PADDING["cp1252" if encoding == "cp1252" else "any"]
    return st.one_of(st.just(""), st.just(""), st.text(alphabet=alphabet, max_size=3))


def typed_value(draw: st.DrawFn, spec: ColumnSpec, encoding: str) -> Any:
    """A valid value for `spec` (the canonical one for allowed values)."""
    if spec.allowed:
        return pick(draw, list(spec.allowed))
    if spec.type == "int":
        low, high = _bounds(spec, (INT64_MIN, INT64_MAX))
        return draw(st.integers(low, high))
    if spec.type == "decimal":
        places = draw(st.integers(0, 2))
        low, high = _bounds(spec, (-(10**13), 10**13))
        units = draw(st.integers(low * 10**places, high * 10**places))
        return Decimal(units).scaleb(-places)
    if spec.type == "date":
        return draw(st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)))
    return draw(free_text(encoding))


def spell(draw: st.DrawFn, spec: ColumnSpec, value: Any, encoding: str) -> str:
    """The raw text of a valid value: one accepted spelling, padded."""
    if value is None:
        text = ""
    elif spec.allowed:
        text = case_variant(draw, pick(draw, allowed_spellings(spec)[value]))
    elif spec.type == "int":
        text = int_spelling(draw, value)
    elif spec.type == "decimal":
        text = decimal_spelling(draw, value)
    elif spec.type == "date":
        text = date_spelling(draw, value)
    else:
        text = value
    raw = draw(padding(encoding)) + text + draw(padding(encoding))
    assume(unambiguous(raw, encoding))
    return raw


def invalid_spellings(spec: ColumnSpec) -> list[str]:
    """Texts that break exactly one documented rule of `spec` (none for a free string)."""
    bad: list[str] = []
    if spec.required:
        bad += ["", "   ", "\t"]
    if spec.allowed:
        bad += ["XX", "talvez", "??"]
    elif spec.type == "int":
        bad += ["abc", "1.5", "12a", "1 000", str(INT64_MAX + 1)]
    elif spec.type == "decimal":
        bad += ["abc", "NaN", "inf", "-inf", "1,2,3", "1.234.567", "12,5x", "R$"]
    elif spec.type == "date":
        bad += ["31/02/2024", "2023-02-29", "2024-13-01", "00/01/2024", "15/01/24",
                "2024/01/15", "2024-1-5", "5/1/2024"]
    if spec.min is not None and not spec.allowed:
        bad.append(str(int(spec.min) - 1))
    if spec.max is not None and not spec.allowed:
        bad.append(str(int(spec.max) + 1))
    return bad


# Values a contract derives from others (its row checks), as exact decimal arithmetic.
Derivation = Callable[[dict[str, Any]], Any]
DERIVED: dict[str, dict[str, Derivation]] = {
    "vendas": {"valor_total": lambda row: row["quantidade"] * row["preco_unitario"]},
}
# Bounds that keep a row check's float arithmetic exact to the cent (quantity × price).
NARROWED: dict[str, dict[str, tuple[int, int]]] = {
    "vendas": {"quantidade": (1, 10_000), "preco_unitario": (0, 10_000_000)},
}


# --- rows and files -----------------------------------------------------------------------------
@dataclass
class Row:
    """One record of the file. `fields` is in header order; `ragged` records have one more or
    one fewer field than the header."""

    fields: list[str]
    contract_raw: tuple[str, ...]  # raw text of the contract columns, contract order
    expected: dict[str, Any] | None  # clean values; None when built to fail a check
    typed: dict[str, Any] = field(default_factory=dict)  # the values drawn (valid rows)
    id_value: Any = None  # the row's unique id (typed), None when missing or unreadable
    ragged: bool = False
    why: str = "valid"
    line: int = 0  # physical line the record starts on (set when the file is written)


@dataclass
class GeneratedFile:
    contract: Contract
    encoding: str
    delimiter: str
    newline: str
    gzipped: bool
    chunk_bytes: int
    header: list[str]  # header texts as written
    keys: list[str]  # file column -> contract column name, or "" for an extra column
    rows: list[Row]
    text: str = ""
    data: bytes = b""

    @property
    def present(self) -> list[str]:
        """Contract columns in the file, in contract order."""
        return [name for name in self.contract.column_names if name in self.keys]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return (
            f"GeneratedFile(contract={self.contract.name!r}, encoding={self.encoding!r}, "
            f"delimiter={self.delimiter!r}, newline={self.newline!r}, gzipped={self.gzipped}, "
            f"chunk_bytes={self.chunk_bytes}, rows={[r.why for r in self.rows]},\n"
            f"text={self.text!r})"
        )


@dataclass
class Outcomes:
    exported: list[dict[str, Any]] = field(default_factory=list)
    quarantined_lines: list[int] = field(default_factory=list)
    duplicates: int = 0


def expected_outcomes(generated: GeneratedFile) -> Outcomes:
    """The documented row outcomes: field count, then duplicate, then values, then ids."""
    outcomes = Outcomes()
    seen_rows: set[tuple[str, ...]] = set()
    seen_ids: set[Any] = set()
    for row in generated.rows:
        if row.ragged:
            outcomes.quarantined_lines.append(row.line)
            continue
        if row.contract_raw in seen_rows:
            outcomes.duplicates += 1
            continue
        seen_rows.add(row.contract_raw)
        if row.expected is None or (row.id_value is not None and row.id_value in seen_ids):
            outcomes.quarantined_lines.append(row.line)
        else:
            outcomes.exported.append(row.expected)
        if row.id_value is not None:
            seen_ids.add(row.id_value)
    return outcomes


HEADER_PADDING = st.text(alphabet=" \t\xa0\x0b\x0c", max_size=2)


def _header_spelling(draw: st.DrawFn, name: str, encoding: str) -> str:
    words = [ACCENTED.get(word, word) if draw(st.booleans()) else word for word in name.split("_")]
    words = [case_variant(draw, word) for word in words]
    separator = pick(draw, [" ", "_", "-", ".", " - ", "  ", "__"])
    text = draw(HEADER_PADDING)
    text += separator.join(words) + pick(draw, ["", " ", "  "])
    assert header_key(text) == name, (text, name)
    assume(unambiguous(text, encoding))
    return text


def _id_column(contract: Contract, present: Sequence[str]) -> str | None:
    return next((c.name for c in contract.columns if c.unique and c.name in present), None)


@st.composite
def generated_files(draw: st.DrawFn) -> GeneratedFile:
    contract = load_contract(pick(draw, CONTRACTS))
    encoding = pick(draw, sorted(ENCODINGS))
    optional = [c.name for c in contract.columns if not c.required]
    chosen = draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []
    present = {*contract.required_columns, *chosen}
    extras = draw(st.lists(st.sampled_from(EXTRA_COLUMNS), max_size=2))
    keys = draw(st.permutations([*sorted(present), *[""] * len(extras)]))
    extra_names = iter(extras)
    header = [
        _header_spelling(draw, key, encoding) if key else case_variant(draw, next(extra_names))
        for key in keys
    ]
    for text in header:
        assume(unambiguous(text, encoding))
    generated = GeneratedFile(
        contract=contract,
        encoding=encoding,
        delimiter=pick(draw, DELIMITERS),
        newline=pick(draw, NEWLINES),
        gzipped=draw(st.booleans()),
        chunk_bytes=pick(draw, CHUNK_SIZES),
        header=header,
        keys=keys,
        rows=[],
    )
    count = draw(st.integers(0, 16))
    id_column = _id_column(contract, generated.present)
    ids: list[Any] = []
    if id_column is not None:
        ids = draw(st.lists(typed_value_strategy(contract.column(id_column), encoding),
                            min_size=count, max_size=count, unique=True))
    for number in range(count):
        kind = pick(draw, ROW_KINDS)
        earlier = [row for row in generated.rows if not row.ragged]
        if kind == "duplicate" and earlier:
            original = pick(draw, earlier)
            raw = dict(zip(generated.present, original.contract_raw, strict=True))
            row = _row_with(draw, generated, raw)
            row.expected, row.id_value, row.why = original.expected, original.id_value, "duplicate"
        elif kind == "reused_id" and any(r.id_value is not None for r in earlier):
            reused = pick(draw, [r.id_value for r in earlier if r.id_value is not None])
            row = _valid_row(draw, generated, reused, keep_id=True)
            row.why = "reused_id"
        elif kind == "ragged":
            row = _ragged_row(draw, generated)
        elif kind == "invalid":
            row = _invalid_row(draw, generated, ids[number] if ids else None)
        else:
            row = _valid_row(draw, generated, ids[number] if ids else None)
        generated.rows.append(row)
    _write(draw, generated)
    return generated


def typed_value_strategy(spec: ColumnSpec, encoding: str) -> st.SearchStrategy[Any]:
    @st.composite
    def values(draw: st.DrawFn) -> Any:
        return typed_value(draw, spec, encoding)

    return values()


def _extra_value(draw: st.DrawFn, encoding: str) -> str:
    text = "" if draw(st.booleans()) else draw(free_text(encoding))
    assume(unambiguous(text, encoding))
    return text


def _row_with(draw: st.DrawFn, generated: GeneratedFile, raw: dict[str, str]) -> Row:
    """A row whose contract columns have these raw texts (extra columns drawn)."""
    fields = [raw[key] if key else _extra_value(draw, generated.encoding) for key in generated.keys]
    contract_raw = tuple(raw[name] for name in generated.present)
    return Row(fields=fields, contract_raw=contract_raw, expected=None)


def _valid_values(
    draw: st.DrawFn, generated: GeneratedFile, id_value: Any, keep_id: bool
) -> dict[str, Any]:
    contract, encoding = generated.contract, generated.encoding
    narrowed = NARROWED.get(contract.name, {})
    derived = DERIVED.get(contract.name, {})
    values: dict[str, Any] = {}
    for name in generated.present:
        spec = contract.column(name)
        if spec.unique:  # an optional id may be missing, unless the row is built to reuse it
            keep = keep_id or spec.required or draw(st.integers(0, 4)) > 0
            values[name] = id_value if keep else None
        elif name in derived:
            continue
        elif name in narrowed:
            low, high = narrowed[name]
            values[name] = typed_value(draw, _narrow(spec, low, high), encoding)
        elif not spec.required and draw(st.integers(0, 4)) == 0:
            values[name] = None
        else:
            values[name] = typed_value(draw, spec, encoding)
    for name, derive in derived.items():
        if name in generated.present:
            values[name] = derive(values)
    return values


def _narrow(spec: ColumnSpec, low: int, high: int) -> ColumnSpec:
    return ColumnSpec(name=spec.name, type=spec.type, required=spec.required, min=low, max=high)


def _valid_row(
    draw: st.DrawFn, generated: GeneratedFile, id_value: Any, keep_id: bool = False
) -> Row:
    values = _valid_values(draw, generated, id_value, keep_id)
    raw = {
        name: spell(draw, generated.contract.column(name), value, generated.encoding)
        for name, value in values.items()
    }
    row = _row_with(draw, generated, raw)
    row.expected = {
        name: _json_value(generated.contract.column(name), value) for name, value in values.items()
    }
    row.typed = values
    id_column = _id_column(generated.contract, generated.present)
    row.id_value = values.get(id_column) if id_column else None
    return row


def _invalid_row(draw: st.DrawFn, generated: GeneratedFile, id_value: Any) -> Row:
    """A valid row with one value broken (or its derived value off by more than a cent)."""
    contract = generated.contract
    row = _valid_row(draw, generated, id_value)
    breakable = [name for name in generated.present if invalid_spellings(contract.column(name))]
    derived = [name for name in DERIVED.get(contract.name, {}) if name in generated.present]
    target = pick(draw, breakable + derived)
    raw = dict(zip(generated.present, row.contract_raw, strict=True))
    if target in derived:
        delta = Decimal(pick(draw, ["0.02", "-0.02", "-1", "100"]))
        raw[target] = decimal_spelling(draw, row.typed[target] + delta)
    else:
        raw[target] = pick(draw, invalid_spellings(contract.column(target)))
    broken = _row_with(draw, generated, raw)
    broken.id_value = None if contract.column(target).unique else row.id_value
    broken.why = f"invalid {target}={raw[target]!r}"
    return broken


def _ragged_row(draw: st.DrawFn, generated: GeneratedFile) -> Row:
    fields = [_extra_value(draw, generated.encoding) for _ in generated.keys]
    if draw(st.booleans()):
        fields.append(_extra_value(draw, generated.encoding))
    else:
        fields.pop()
    return Row(fields=fields, contract_raw=(), expected=None, ragged=True, why="ragged")


# --- writing --------------------------------------------------------------------------------------
def _field_text(draw: st.DrawFn, text: str, delimiter: str) -> str:
    """RFC 4180 quoting where needed; elsewhere quoted or not at random. A quote that does not
    open a field is a plain character (docs/processing.md), so `TV 32"` may stay unquoted."""
    needed = delimiter in text or "\n" in text or "\r" in text or text.startswith('"')
    if needed or draw(st.integers(0, 3)) == 0:
        return '"' + text.replace('"', '""') + '"'
    return text


BLANKS_BEFORE_HEADER = st.lists(st.sampled_from(BLANK_LINES), max_size=2)
BLANKS_AFTER_ROW = st.lists(st.sampled_from(BLANK_LINES), max_size=1)


def count_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _write(draw: st.DrawFn, generated: GeneratedFile) -> None:
    newline, delimiter = generated.newline, generated.delimiter
    pieces: list[str] = list(draw(BLANKS_BEFORE_HEADER))
    pieces.append(delimiter.join(_field_text(draw, name, delimiter) for name in generated.header))
    line = 1 + sum(count_breaks(piece + newline) for piece in pieces)
    for row in generated.rows:
        row.line = line
        record = delimiter.join(_field_text(draw, text, delimiter) for text in row.fields)
        blanks = draw(BLANKS_AFTER_ROW)
        for piece in (record, *blanks):
            pieces.append(piece)
            line += count_breaks(piece + newline)
    text = newline.join(pieces)
    if draw(st.booleans()):
        text += newline
    generated.text = text
    if generated.encoding.startswith("utf-16"):
        data = "\ufeff".encode(generated.encoding) + text.encode(generated.encoding)
    else:
        data = text.encode(generated.encoding)
    generated.data = gzip.compress(data, mtime=0) if generated.gzipped else data


def report_encoding(generated: GeneratedFile) -> str:
    if generated.encoding == "cp1252" and generated.text.isascii():
        return "utf-8"
    return ENCODINGS[generated.encoding]
