"""Date and datetime columns: formats, the default set, time zones, min/max, across chunks."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from ivi.cli import main
from processing.clean import column_cleaning, run_steps
from processing.contract import ColumnSpec, load_contract, parse_contract
from processing.errors import ContractError
from processing.run import process_file
from processing.write import iso_datetimes


def contract_file(tmp_path: Path, columns: str, name: str = "eventos") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\n\n[[columns]]\nname = "id"\ntype = "int"\n{columns}', "utf-8")
    return path


def typed(spec: ColumnSpec, values: list[str | None]) -> list[object]:
    cleaning = column_cleaning(spec)
    frame = run_steps(pl.DataFrame({spec.name: values}, schema={spec.name: pl.String}), [cleaning.text_steps])
    return run_steps(frame, [cleaning.typed_steps])[spec.name].to_list()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-05T10:30", datetime(2024, 1, 5, 10, 30)),
        ("2024-01-05 10:30", datetime(2024, 1, 5, 10, 30)),
        ("2024-01-05T10:30:15", datetime(2024, 1, 5, 10, 30, 15)),
        ("2024-01-05 10:30:15.25", datetime(2024, 1, 5, 10, 30, 15, 250000)),
        ("2024-01-05T10:30:15Z", datetime(2024, 1, 5, 10, 30, 15)),
        ("2024-01-05T10:30:15-03:00", datetime(2024, 1, 5, 13, 30, 15)),
        ("2024-01-05T10:30:15.5+0100", datetime(2024, 1, 5, 9, 30, 15, 500000)),
        ("2024-01-05T10:30-03:00", datetime(2024, 1, 5, 13, 30)),
        ("05/01/2024", datetime(2024, 1, 5)),
        ("05/01/2024 10:30", datetime(2024, 1, 5, 10, 30)),
        ("05/01/2024 10:30:15", datetime(2024, 1, 5, 10, 30, 15)),
        ("31/02/2024 10:30", None),  # impossible date
        ("2024-02-30T10:00", None),
        ("05/01/24 10:30", None),  # `%Y` would read the year 24
        ("2024-01-05", None),  # a date alone is not in the default set of a datetime
        ("10:30", None),
        ("soon", None),
    ],
)
def test_the_default_datetime_set(value: str, expected: datetime | None) -> None:
    assert typed(ColumnSpec("quando", "datetime"), [value]) == [expected]


def test_formats_are_tried_in_order_and_impossible_dates_are_null() -> None:
    spec = ColumnSpec("quando", "datetime", format=("%m/%d/%Y %H:%M", "%Y%m%d"))
    assert typed(spec, ["3/21/2017 0:00", "12/19/2016 14:10", "20170102", "2/30/2017 0:00", "21/3/2017 0:00", None]) == [
        datetime(2017, 3, 21), datetime(2016, 12, 19, 14, 10), datetime(2017, 1, 2), None, None, None,
    ]
    dates = ColumnSpec("dia", "date", format=("%m/%d/%Y",))
    assert typed(dates, ["2/28/2017", "2/30/2017", "02/29/2016", "13/01/2017"]) == [
        date(2017, 2, 28), None, date(2016, 2, 29), None,
    ]


def test_a_date_without_format_keeps_its_two_formats() -> None:
    assert typed(ColumnSpec("dia", "date"), ["2024-01-05", "05/01/2024", "5/1/2024", "31/02/2024"]) == [
        date(2024, 1, 5), date(2024, 1, 5), None, None,
    ]


def test_a_timezone_places_naive_values_and_output_is_utc_with_z() -> None:
    spec = ColumnSpec("quando", "datetime", timezone="America/Sao_Paulo")
    values = typed(spec, ["2024-01-05T10:00", "2024-01-05T10:00Z"])
    frame = iso_datetimes(pl.DataFrame({"quando": values}))
    assert frame["quando"].to_list() == ["2024-01-05T13:00:00Z", "2024-01-05T10:00:00Z"]
    naive = iso_datetimes(pl.DataFrame({"quando": [datetime(2024, 1, 5, 10), datetime(2024, 1, 5, 10, 0, 1, 500)]}))
    assert naive["quando"].to_list() == ["2024-01-05T10:00:00", "2024-01-05T10:00:01.000500"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ('[[columns]]\nname = "q"\ntype = "string"\nformat = "%Y"\n', "for date and datetime columns only"),
        ('[[columns]]\nname = "q"\ntype = "date"\nformat = 3\n', "strftime format"),
        ('[[columns]]\nname = "q"\ntype = "date"\ntimezone = "UTC"\n', "for datetime columns only"),
        ('[[columns]]\nname = "q"\ntype = "datetime"\ntimezone = "Mars/Olympus"\n', "unknown timezone"),
        ('[[columns]]\nname = "q"\ntype = "datetime"\nmin = "yesterday"\n', "ISO 8601 datetime"),
        ('[[columns]]\nname = "q"\ntype = "date"\nmax = "2024-01-05T10:00"\n', "ISO 8601 date"),
        ('[[columns]]\nname = "q"\ntype = "int"\nmin = "2024-01-05"\n', "must be a number"),
    ],
)
def test_bad_time_keys_are_contract_errors(tmp_path: Path, columns: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_contract(contract_file(tmp_path, columns))


def test_limits_are_read_as_the_columns_values(tmp_path: Path) -> None:
    contract = parse_contract(contract_file(tmp_path, """
[[columns]]
name = "dia"
type = "date"
min = "2020-01-01"
max = 2024-12-31
[[columns]]
name = "quando"
type = "datetime"
timezone = "America/Sao_Paulo"
min = "2020-01-01T00:00"
"""))
    assert contract.column("dia").min == date(2020, 1, 1)
    assert contract.column("dia").max == date(2024, 12, 31)
    assert contract.column("quando").min.isoformat() == "2020-01-01T03:00:00+00:00"
    assert contract.column("quando").powerbi_type == "DateTime"


EVENTS = """
[[columns]]
name = "quando"
type = "datetime"
required = true
format = ["%m/%d/%Y %H:%M", "%Y-%m-%dT%H:%M:%S"]
min = "2016-01-01"
max = "2017-12-31T23:59:59"

[[columns]]
name = "dia"
type = "date"
format = "%d.%m.%Y"
min = "2016-06-01"
"""


def event_rows(count: int) -> tuple[str, int]:
    """Rows, and how many of them must be quarantined: every 5th is out of range, every 7th
    impossible, every 11th does not parse."""
    lines, bad = ["id,quando,dia"], 0
    for i in range(count):
        when, day = f"{1 + i % 12}/{1 + i % 28}/2017 {i % 24}:{i % 60:02d}", f"{1 + i % 28:02d}.07.2016"
        if i % 5 == 0:
            when = "2015-12-31T23:00:00"
        elif i % 7 == 0:
            day = "30.02.2017"
        elif i % 11 == 0:
            when = "amanhã"
        else:
            lines.append(f"{i},{when},{day}")
            continue
        bad += 1
        lines.append(f"{i},{when},{day}")
    return "\n".join(lines) + "\n", bad


@pytest.mark.parametrize("chunk_bytes", [64, 999])
def test_datetimes_and_ranges_across_chunk_boundaries(tmp_path: Path, chunk_bytes: int) -> None:
    text, bad = event_rows(400)
    source = tmp_path / "eventos.csv"
    source.write_text(text, "utf-8")
    contract = parse_contract(contract_file(tmp_path, EVENTS))
    whole = process_file(source, contract, tmp_path / "whole")
    chunked = process_file(source, contract, tmp_path / "chunked", chunk_bytes=chunk_bytes)
    assert (whole.quarantined_rows, chunked.quarantined_rows) == (bad, bad)
    assert whole.failures == chunked.failures
    assert whole.failures["quando"] == {"min": 80, "type": 25}
    assert whole.failures["dia"] == {"type": 46}
    for name in ("eventos.csv", "eventos.json", "eventos.rejected.csv"):
        assert (tmp_path / "whole" / name).read_text("utf-8") == (tmp_path / "chunked" / name).read_text("utf-8")
    clean = (tmp_path / "whole" / "eventos.csv").read_text("utf-8").splitlines()
    assert clean[1] == "1,2017-02-02T01:01:00,2016-07-02"
    first = json.loads((tmp_path / "whole" / "eventos.json").read_text("utf-8"))[0]
    assert first == {"id": 1, "quando": "2017-02-02T01:01:00", "dia": "2016-07-02"}
    rejected = (tmp_path / "whole" / "eventos.rejected.csv").read_text("utf-8")
    assert "quando: below the minimum 2016-01-01T00:00:00 ('2015-12-31T23:00:00')" in rejected
    assert "dia: not a date (expected %d.%m.%Y) ('30.02.2017')" in rejected
    assert "quando: not a datetime (expected %m/%d/%Y %H:%M or %Y-%m-%dT%H:%M:%S) ('amanhã')" in rejected


def test_contract_by_path_in_validate_and_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "x.csv"
    source.write_text("id,quando\n1,2024-01-05 10:00\n", "utf-8")
    path = contract_file(tmp_path, '[[columns]]\nname = "quando"\ntype = "datetime"\n')
    assert main(["validate", str(source), "--contract", str(path)]) == 0
    assert main(["process", str(source), "--contract", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "x.csv").read_text("utf-8") == "id,quando\n1,2024-01-05T10:00:00\n"
    assert main(["validate", str(source), "--contract", str(tmp_path / "missing.toml")]) == 2
    assert main(["validate", str(source), "--contract", "no_such_contract"]) == 2
    err = capsys.readouterr().err
    assert "no contract file" in err and "unknown contract 'no_such_contract'" in err
    assert "Traceback" not in err
    assert load_contract(str(path)).name == "eventos"
