"""A first contract for a file: each column's type, format and rules inferred from its values.

`ivi contract draft FILE --name NAME` (ivi/contract_command.py) calls `draft_contract`. The
file is read by the pipeline's own reader (encodings, delimiters, multi-line records, gzip),
chunk by chunk: memory holds per-column counters, not the rows (plus 8 bytes per row for the
columns that may be ids). A candidate rule is tested with the engine's own cleaning
(`processing.clean`), so a value the draft counts as, say, a date is one the engine reads as
that date: the draft passes on the file it came from (`ivi validate FILE --contract DRAFT`).

It stays conservative: `required` only without an empty value, `unique` only for id-like
columns whose values are all distinct, `allowed` only for a handful of distinct values, no
`min` / `max` (the range seen goes in the comment).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from processing.clean import column_cleaning, run_steps
from processing.contract import ColumnSpec, fold_accents, normalise_name
from processing.dedup import SeenIds
from processing.errors import FileRejected
from processing.records import Layout, parse_chunk
from processing.run import _split_unterminated
from processing.source import CHUNK_BYTES, TextSource

#: Date orders tried, as (label, strftime date part). Two-digit years last.
DATE_ORDERS: tuple[tuple[str, str], ...] = (
    ("YYYY-MM-DD", "%Y-%m-%d"),
    ("DD/MM/YYYY", "%d/%m/%Y"),
    ("MM/DD/YYYY", "%m/%d/%Y"),
    ("YYYY/MM/DD", "%Y/%m/%d"),
    ("DD-MM-YYYY", "%d-%m-%Y"),
    ("MM-DD-YYYY", "%m-%d-%Y"),
    ("DD.MM.YYYY", "%d.%m.%Y"),
    ("DD/MM/YY", "%d/%m/%y"),
    ("MM/DD/YY", "%m/%d/%y"),
)
#: Time parts that may follow a date; no two accept the same value (`%.f` is optional).
TIME_PARTS: tuple[str, ...] = (
    "",
    " %H:%M",
    " %H:%M:%S%.f",
    "T%H:%M",
    "T%H:%M:%S%.f",
    " %H:%M:%S%.f%#z",
    "T%H:%M:%S%.f%#z",
)
#: When both orders fit every value (no day above 12), the first of the pair wins.
AMBIGUOUS = {"MM/DD/YYYY": "DD/MM/YYYY", "MM-DD-YYYY": "DD-MM-YYYY", "MM/DD/YY": "DD/MM/YY"}
ALLOWED_MAX_VALUES = 5  # an `allowed` list only for at most this many distinct values...
ALLOWED_MIN_ROWS = 20  # ...seen in at least this many rows
TRACKED_DISTINCT = 20  # distinct values remembered per column, for the comment
SHOWN_CHARS = 30
_ID_LIKE = re.compile(r"(^|_)(id|cod|codigo|code|sku|uuid|key|chave)($|_)")
_LEADING_ZERO = r"^[+-]?0[0-9]"


@dataclass
class _Column:
    """What was seen in one column so far, and which types are still possible."""

    name: str
    header: str
    values: int = 0
    empties: int = 0
    candidates: set[str] = field(default_factory=lambda: {"int", "decimal", "boolean"})
    orders: dict[str, Counter[str]] = field(
        default_factory=lambda: {label: Counter() for label, _ in DATE_ORDERS}
    )
    low: dict[str, object] = field(default_factory=dict)  # per type or date order: min seen
    high: dict[str, object] = field(default_factory=dict)
    distinct: Counter[str] | None = field(default_factory=Counter)  # None: too many to track
    text_ids: SeenIds | None = None
    int_ids: SeenIds | None = None
    repeated: set[str] = field(default_factory=set)  # "text" / "int": a value came twice
    longest: int = 0

    def see_range(self, key: str, series: pl.Series) -> None:
        if series.len() == series.null_count():
            return
        low, high = series.min(), series.max()
        if key not in self.low or low < self.low[key]:  # type: ignore[operator]
            self.low[key] = low
        if key not in self.high or high > self.high[key]:  # type: ignore[operator]
            self.high[key] = high


@dataclass
class Draft:
    """The inferred contract as TOML text, and what the caller should tell the user."""

    toml: str
    rows: int
    columns: int
    notes: list[str]
    sampled: bool  # stopped at --sample-rows before the end of the file


def _bad(raw: pl.Series, spec: ColumnSpec) -> pl.Series:
    """Mask of values present but unreadable as `spec`: the engine's own test (`_unreadable`)."""
    cleaning = column_cleaning(spec)
    values = run_steps(raw.to_frame(spec.name), [cleaning.text_steps])
    typed = run_steps(values, [cleaning.typed_steps])
    return values[spec.name].is_not_null() & typed[spec.name].is_null()


def _typed(raw: pl.Series, spec: ColumnSpec) -> pl.Series:
    cleaning = column_cleaning(spec)
    values = run_steps(raw.to_frame(spec.name), [cleaning.text_steps])
    return run_steps(values, [cleaning.typed_steps])[spec.name]


def _observe(column: _Column, raw: pl.Series) -> None:
    """Update a column's counters with one chunk of its raw values."""
    name = column.name
    text = raw.str.strip_chars()
    present = text.filter(text != "")
    column.empties += raw.len() - present.len()
    column.values += present.len()
    if present.len() == 0:
        return
    present = present.rename(name)
    column.longest = max(column.longest, int(present.str.len_chars().max() or 0))
    if column.distinct is not None:
        for value, count in present.value_counts().iter_rows():
            column.distinct[value] += count
        if len(column.distinct) > TRACKED_DISTINCT:
            column.distinct = None
    leading_zero = bool(present.str.contains(_LEADING_ZERO).any())
    for kind in sorted(column.candidates):
        spec = ColumnSpec(name=name, type=kind)  # type: ignore[arg-type]
        if (kind in ("int", "decimal") and leading_zero) or _bad(present, spec).any():
            column.candidates.discard(kind)
        elif kind in ("int", "decimal"):
            column.see_range(kind, _typed(present, spec))
    for label, date_part in DATE_ORDERS:
        if label not in column.orders:
            continue
        covered = pl.Series(name, [False] * present.len())
        parsed: list[pl.Series] = []
        for time_part in TIME_PARTS:
            fmt = date_part + time_part
            spec = ColumnSpec(
                name=name, type="date" if not time_part else "datetime", format=(fmt,)
            )
            typed = _typed(present, spec)
            fits = typed.is_not_null()
            if fits.any():
                column.orders[label][fmt] += int(fits.sum())
                covered = covered | fits
                parsed.append(typed.cast(pl.Datetime("us")))
        if not covered.all():
            del column.orders[label]
        else:
            column.see_range(label, pl.concat(parsed).drop_nulls())
    if _ID_LIKE.search(name):
        if "text" not in column.repeated:
            column.text_ids = column.text_ids or SeenIds()
            hashes = present.hash().reinterpret(signed=True)
            if column.text_ids.reused(hashes).any():
                column.repeated.add("text")
        if "int" in column.candidates and "int" not in column.repeated:
            column.int_ids = column.int_ids or SeenIds()
            ints = _typed(present, ColumnSpec(name=name, type="int"))
            if column.int_ids.reused(ints).any():
                column.repeated.add("int")


def _date_choice(column: _Column) -> tuple[str, str, tuple[str, ...], str] | None:
    """(type, order label, formats, note) for a column every value of which is a date."""
    if column.values == 0 or not column.orders:
        return None
    labels = list(column.orders)
    note = ""
    for us_order, br_order in AMBIGUOUS.items():
        if us_order in labels and br_order in labels:
            labels.remove(us_order)
            note = f"no day above 12: {br_order} (Brazilian order) chosen, {us_order} fits too"
    label = labels[0]
    used = column.orders[label]
    formats = tuple(fmt for fmt, _ in used.most_common())
    kind = "date" if all(fmt == dict(DATE_ORDERS)[label] for fmt in formats) else "datetime"
    return kind, label, formats, note


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _comment(text: str) -> str:
    """A TOML comment line: no line break or other control character in it."""
    return "# " + "".join(ch if ch.isprintable() else " " for ch in text)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in escaped)
    return f'"{escaped}"'


def _allowed(column: _Column) -> list[str]:
    """A handful of distinct plain values seen often enough: an `allowed` list, one spelling
    per value as the engine matches them (ignoring case and accents), the most common one."""
    if column.distinct is None or column.values < ALLOWED_MIN_ROWS:
        return []
    spellings: dict[str, tuple[int, str]] = {}
    for value, count in column.distinct.items():
        if not re.fullmatch(r"[A-Za-z0-9À-ÿ _./-]+", value):
            return []
        key = fold_accents(value.lower())
        if key not in spellings or count > spellings[key][0]:
            spellings[key] = (count, value)
    if len(spellings) > ALLOWED_MAX_VALUES:
        return []
    return sorted(value for _, value in spellings.values())


def _column_toml(column: _Column) -> tuple[list[str], str]:
    """The `[[columns]]` entry of a column, and a note for the user (or "")."""
    seen = f"{column.values} values, {column.empties} empty"
    lines: list[str] = []
    keys: dict[str, str] = {}
    note = ""
    choice = _date_choice(column)
    if column.values == 0:
        kind = "string"
        comment = f"always empty ({column.empties} rows): type unknown, left as string"
    elif "int" in column.candidates:
        kind = "int"
        comment = f"{seen}; range {_shown(column.low['int'])} .. {_shown(column.high['int'])}"
    elif "decimal" in column.candidates:
        kind = "decimal"
        comment = (
            f"{seen}; range {_shown(column.low['decimal'])} .. {_shown(column.high['decimal'])}"
        )
    elif choice is not None:
        kind, label, formats, ambiguity = choice
        keys["format"] = (
            _toml_string(formats[0])
            if len(formats) == 1
            else "[" + ", ".join(_toml_string(f) for f in formats) + "]"
        )
        comment = (
            f"{seen}; range {_shown(column.low[label])} .. {_shown(column.high[label])}; "
            f"format {label}"
        )
        if any(f.endswith("%#z") for f in formats):
            comment += "; some values carry an offset (converted to UTC): consider `timezone`"
        if ambiguity:
            comment += f"; {ambiguity}"
            note = f"{column.name}: {ambiguity}"
    elif "boolean" in column.candidates:
        kind = "boolean"
        comment = seen
    else:
        kind = "string"
        comment = f"{seen}; longest {column.longest} characters"
    if column.distinct is not None and column.values:
        examples = ", ".join(
            _shown(v) for v, _ in sorted(column.distinct.items(), key=lambda vc: (-vc[1], vc[0]))[:5]
        )
        comment += f"; {len(column.distinct)} distinct: {examples}"
    elif column.values:
        comment += "; many distinct values"
    lines.append(_comment(f"{column.header.strip() or column.name}: {comment}"))
    lines.append("[[columns]]")
    lines.append(f"name = {_toml_string(column.name)}")
    lines.append(f"type = {_toml_string(kind)}")
    if "format" in keys:
        lines.append(f"format = {keys['format']}")
    if column.values and column.empties == 0:
        lines.append("required = true")
    distinct_ids = "int" if kind == "int" else "text"
    if (
        _ID_LIKE.search(column.name)
        and column.values
        and column.empties == 0
        and distinct_ids not in column.repeated
        and kind in ("int", "string")
    ):
        lines.append("unique = true")
    elif kind == "string":
        allowed = _allowed(column)
        if allowed:
            lines.append("allowed = [" + ", ".join(_toml_string(v) for v in allowed) + "]")
    return lines, note


def draft_contract(
    path: Path, name: str, sample_rows: int | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Draft:
    """Infer a contract called `name` from `path`; FileRejected for a file it cannot read."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"contract name {name!r}: lower-case letters, digits and `_` only")
    notes: list[str] = []
    with TextSource(path, chunk_bytes=chunk_bytes) as source:
        header = source.require_header()
        columns: dict[int, _Column] = {}
        seen_names: Counter[str] = Counter(normalise_name(h) for h in header.names)
        for index, raw_name in enumerate(header.names):
            normal = normalise_name(raw_name)
            if not normal:
                notes.append(f"column {index + 1} has no name: left out")
            elif seen_names[normal] > 1:
                if normal not in {c.name for c in columns.values()} and not any(
                    n.startswith(f"`{normal}`") for n in notes
                ):
                    notes.append(f"`{normal}` names {seen_names[normal]} columns: left out")
            else:
                columns[index] = _Column(name=normal, header=raw_name)
        if not columns:
            raise FileRejected("no header: no column has a usable name")
        layout = Layout(
            delimiter=header.delimiter,
            field_count=len(header.names),
            columns={index: column.name for index, column in columns.items()},
        )
        rows = ragged = 0
        sampled = False
        for chunk in source.chunks():
            data, breaks, unterminated = chunk.data, chunk.breaks, []
            if chunk.unterminated_at is not None:
                data, unterminated = _split_unterminated(
                    data, chunk.unterminated_at, chunk.first_line
                )
                breaks = None
            parsed = parse_chunk(data, chunk.first_line, layout, breaks)
            del chunk, data
            ragged += len(parsed.ragged) + len(unterminated)
            frame = parsed.frame
            if sample_rows is not None and rows + frame.height >= sample_rows:
                frame = frame.head(sample_rows - rows)
                sampled = True
            rows += frame.height
            for column in columns.values():
                _observe(column, frame[column.name])
            if sampled:
                break
        encoding, delimiter = source.encoding, header.delimiter
    if rows == 0:
        raise FileRejected("header only: no rows to infer the columns from")
    if ragged:
        notes.append(
            f"{ragged} records have the wrong number of fields: validate will quarantine them"
        )
    out = [
        f"# Data contract: {name}. Drafted by `ivi contract draft` from {path.name}",
        f"# ({rows} rows{' sampled' if sampled else ''}, {encoding}, delimiter {delimiter!r}).",
        "# Read every column and its comment: what was seen is not always what is meant.",
        f"name = {_toml_string(name)}",
        f"description = {_toml_string(f'Drafted from {path.name}: say what one row is.')}",
        "",
        "# [powerbi]          # to push the dataset to Power BI",
        f'# table = "{name}"',
    ]
    for column in columns.values():
        lines, note = _column_toml(column)
        out.append("")
        out.extend(lines)
        if note:
            notes.append(note)
    return Draft(
        toml="\n".join(out) + "\n", rows=rows, columns=len(columns), notes=notes, sampled=sampled
    )
