"""Property: any table, written in any supported encoding, delimiter and spelling, comes back.

Hypothesis draws a table of typed values for a shipped contract, writes it the way
docs/processing.md says files may arrive (UTF-8 with or without BOM, UTF-16 LE/BE with BOM,
Windows-1252; `,` or `;`; `\\n`, `\\r\\n` or `\\r`; gzip or not; headers in any case, with or
without accents, in any order, with extra columns; values padded, quoted or not, in every
accepted number and date spelling; blank lines; duplicates, reused ids, rows with the wrong
field count, rows with one broken value) and runs `process_file` on it, with chunks small
enough to cut the file in many places. Then:

- the clean rows (JSON and CSV) hold exactly the drawn values, in input order, none twice;
- exported + quarantined + duplicates = the records written, each count as expected;
- every quarantined row is listed on the line it starts on.

In CI (`CI=true`) the examples are derandomised, so a run is reproducible; hypothesis prints
the falsifying file (its text, encoding, delimiter, chunk size) when a property fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings

from processing.contract import load_contract
from processing.run import process_file
from tests.property_support import (
    CHUNK_SIZES,
    CONTRACTS,
    DELIMITERS,
    ENCODINGS,
    NEWLINES,
    GeneratedFile,
    expected_outcomes,
    generated_files,
    report_encoding,
)

settings.register_profile(
    "ivi-properties",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)
settings.register_profile(
    "ivi-properties-ci", parent=settings.get_profile("ivi-properties"), derandomize=True,
    database=None, print_blob=True,
)
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
PROFILE = settings.get_profile("ivi-properties-ci" if IN_CI else "ivi-properties")


def _csv_value(text: str, like: Any) -> Any:
    """A clean CSV field read back as the type of its JSON value (an empty field is missing)."""
    if text == "":
        return None
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def _run(generated: GeneratedFile, tmp: Path) -> tuple[Any, list[dict[str, Any]], Path]:
    suffix = ".csv.gz" if generated.gzipped else ".csv"
    source = tmp / f"{generated.contract.name}{suffix}"
    source.write_bytes(generated.data)
    out = tmp / "out"
    report = process_file(
        source, generated.contract, out, stem="table", chunk_bytes=generated.chunk_bytes
    )
    rows = json.loads((out / "table.json").read_text(encoding="utf-8"))
    return report, rows, out


@settings(PROFILE)
@given(generated=generated_files())
def test_any_generated_table_comes_back_with_the_same_values_and_counts(
    generated: GeneratedFile, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("property")
    expected = expected_outcomes(generated)
    report, rows, out = _run(generated, tmp)
    note(f"expected exported={expected.exported}")
    note(f"got exported={rows}")

    # the counts add up, each to what the file holds
    records = len(generated.rows)
    assert (report.input_rows, report.exported_rows, report.quarantined_rows,
            report.duplicate_rows) == (
        records, len(expected.exported), len(expected.quarantined_lines), expected.duplicates
    )
    assert report.exported_rows + report.quarantined_rows + report.duplicate_rows == records

    # the clean rows are the drawn values, in order, none lost and none twice
    assert rows == expected.exported
    assert all(list(row) == generated.present for row in rows)

    # the clean CSV says the same, in contract column order
    with open(out / "table.csv", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert header == generated.present
        csv_rows = [dict(zip(header, fields, strict=True)) for fields in reader]
    assert len(csv_rows) == len(rows)
    for csv_row, row in zip(csv_rows, rows, strict=True):
        assert {k: _csv_value(v, row[k]) for k, v in csv_row.items()} == row

    # every quarantined row, by the line it starts on
    rejected_path = out / "table.rejected.csv"
    lines: list[int] = []
    if rejected_path.exists():
        text = rejected_path.read_text(encoding="utf-8")
        lines = [int(r["_line"]) for r in csv.DictReader(io.StringIO(text, newline=""))]
    assert lines == sorted(expected.quarantined_lines)

    # what the report says about the file itself
    assert report.encoding == report_encoding(generated)
    assert report.delimiter == generated.delimiter
    assert report.compression == ("gzip" if generated.gzipped else "none")
    assert report.columns == generated.present
    assert len(report.ignored_columns) == generated.keys.count("")


def test_the_drawn_files_cover_every_encoding_delimiter_newline_and_row_kind() -> None:
    """The property is only as strong as the files it sees: none of the formats or row kinds
    may be starved by the strategy's filters."""
    seen: set[tuple[str, str]] = set()

    # 150, not 80: Hypothesis mixes constants of the project's imported modules into its draws
    # (hypothesis.internal.constants_ast), so even derandomized, a new module elsewhere moves
    # them; at 80 adding the metrics package left utf-8-sig undrawn.
    @settings(PROFILE, max_examples=150, derandomize=True, database=None)
    @given(generated=generated_files())
    def collect(generated: GeneratedFile) -> None:
        seen.update({("contract", generated.contract.name), ("encoding", generated.encoding),
                     ("delimiter", generated.delimiter), ("newline", generated.newline),
                     ("gzip", str(generated.gzipped)), ("chunk", str(generated.chunk_bytes))})
        seen.update(("row", row.why.split(" ")[0]) for row in generated.rows)

    collect()
    wanted = (
        {("contract", name) for name in CONTRACTS}
        | {("encoding", name) for name in ENCODINGS}
        | {("delimiter", d) for d in DELIMITERS}
        | {("newline", n) for n in NEWLINES}
        | {("gzip", "True"), ("gzip", "False")}
        | {("chunk", str(size)) for size in CHUNK_SIZES}
        | {("row", kind) for kind in ("valid", "invalid", "duplicate", "reused_id", "ragged")}
    )
    assert wanted - seen == set()


# --- what the property found, kept as plain examples ------------------------------------------
VENDAS_HEADER = (
    "id_venda;data_venda;cliente;produto;categoria;quantidade;preco_unitario;valor_total;uf\n"
)


def _process_text(
    tmp_path: Path, text: str, chunk_bytes: int
) -> tuple[Any, list[dict[str, Any]], list[int]]:
    """`process_file` on a `vendas` text: the report, the clean rows, the quarantined lines."""
    source = tmp_path / "vendas.csv"
    source.write_bytes(text.encode("utf-8"))
    out = tmp_path / "out"
    report = process_file(source, load_contract("vendas"), out, chunk_bytes=chunk_bytes)
    rows = json.loads((out / "vendas.json").read_text(encoding="utf-8"))
    lines: list[int] = []
    if (out / "vendas.rejected.csv").exists():
        rejected = (out / "vendas.rejected.csv").read_text(encoding="utf-8")
        lines = [int(r["_line"]) for r in csv.DictReader(io.StringIO(rejected, newline=""))]
    return report, rows, lines


def test_a_stray_quote_does_not_split_a_later_quoted_line_break_across_chunks(
    tmp_path: Path,
) -> None:
    text = VENDAS_HEADER + (
        '1;2024-01-01;TV 32";P;C;1;5;5;SP\n'
        '2;2024-01-01;"Ana\nMaria";P;C;1;5;5;SP\n'
        "3;2024-01-01;x;P;C;1;5;5;XX\n"
    )
    report, rows, lines = _process_text(tmp_path, text, chunk_bytes=16)
    assert (report.input_rows, report.exported_rows, report.quarantined_rows) == (3, 2, 1)
    assert [row["cliente"] for row in rows] == ['TV 32"', "Ana\nMaria"]
    assert lines == [5]


def test_quarantined_rows_keep_their_line_after_stray_quotes(tmp_path: Path) -> None:
    text = VENDAS_HEADER + (
        '1;2024-01-01;TV 32";P;C;1;5;5;SP\n'
        '2;2024-01-01;"a\nb\nc";P;C;1;5;5;XX\n'
        '3;2024-01-01;TV 33";P;C;1;5;5;XX\n'
    )
    _, _, lines = _process_text(tmp_path, text, chunk_bytes=1 << 20)
    assert lines == [3, 6]


def test_a_value_that_is_only_a_quoted_line_break_or_a_no_break_space_is_missing(
    tmp_path: Path,
) -> None:
    text = VENDAS_HEADER + (
        '1;2024-01-01;"\n";P;C;1;5;5;SP\n'
        "2;2024-01-01;\xa0;P;C;1;5;5;SP\n"
        '3;2024-01-01;"\r\nAna\xa0";P;C;1;5;5;\u3000sp\n'
    )
    report, rows, lines = _process_text(tmp_path, text, chunk_bytes=1 << 20)
    assert report.failures["cliente"] == {"required": 2}
    assert lines == [2, 4]
    assert [(row["cliente"], row["uf"]) for row in rows] == [("Ana", "SP")]
