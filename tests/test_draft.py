"""`ivi contract draft`: inference on generated files with known truth, and the draft always
passes on the file it came from."""

from __future__ import annotations

import gzip
import random
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivi.cli import main
from processing.contract import parse_contract
from processing.draft import draft_contract
from processing.errors import FileRejected
from processing.run import process_file


def write(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    def field(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    text = "\r\n".join(delimiter.join(field(v) for v in row) for row in [header, *rows]) + "\r\n"
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def drafted(tmp_path: Path, source: Path, **kwargs: object) -> tuple[dict, Path]:
    draft = draft_contract(source, "amostra", **kwargs)  # type: ignore[arg-type]
    out = tmp_path / "amostra.toml"
    out.write_text(draft.toml, "utf-8")
    columns = {c["name"]: c for c in tomllib.loads(draft.toml)["columns"]}
    return columns, out


def passes(source: Path, contract_path: Path) -> bool:
    report = process_file(source, parse_contract(contract_path), chunk_bytes=512)
    return report.quarantined_rows == 0


def moments(count: int, seed: int = 7) -> list[datetime]:
    rng = random.Random(seed)
    start = datetime(2016, 1, 1)
    return [start + timedelta(minutes=rng.randint(0, 900_000)) for _ in range(count)]


def brl(value: float) -> str:
    return f"R$ {value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")


def test_every_type_and_format_on_a_brazilian_export(tmp_path: Path) -> None:
    rng = random.Random(1)
    times = moments(200)
    header = ["ID Venda", "Data", "Criado em", "Preço", "Peso", "Ativo", "UF", "Comentário", "Vazio",
              "CEP", "Misto", "Qtd"]
    rows = [
        [
            str(i + 1),
            f"{t:%d/%m/%Y}",
            f"{t:%d/%m/%Y %H:%M:%S}",
            brl(rng.uniform(0, 5000)),
            f"{rng.uniform(0, 50):.3f}".replace(".", ","),
            rng.choice(["sim", "não", "Sim"]),
            rng.choice(["SP", "RJ", "MG", "sp"]),
            f"linha {i}\ncom quebra, e \"aspas\" 😀",
            "",
            f"{rng.randint(0, 99999):05d}",
            rng.choice(["12", "abc", "3,5"]),
            str(rng.randint(-5, 40)) if i % 9 else "",
        ]
        for i, t in enumerate(times)
    ]
    source = write(tmp_path / "vendas.csv", header, rows, delimiter=";")
    columns, contract = drafted(tmp_path, source)
    assert columns["id_venda"] == {"name": "id_venda", "type": "int", "required": True, "unique": True}
    assert columns["data"] == {"name": "data", "type": "date", "format": "%d/%m/%Y", "required": True}
    assert columns["criado_em"]["type"] == "datetime"
    assert columns["criado_em"]["format"] == "%d/%m/%Y %H:%M:%S%.f"
    assert columns["preco"]["type"] == "decimal" and columns["peso"]["type"] == "decimal"
    assert columns["ativo"]["type"] == "boolean"
    assert columns["uf"]["allowed"] == ["MG", "RJ", "SP"]
    assert columns["comentario"] == {"name": "comentario", "type": "string", "required": True}
    assert columns["vazio"] == {"name": "vazio", "type": "string"}
    assert columns["cep"]["type"] == "string"  # leading zeros: not a number
    assert columns["misto"]["type"] == "string"
    assert columns["qtd"] == {"name": "qtd", "type": "int"}  # empties: not required
    assert passes(source, contract)


def test_comments_say_what_was_seen(tmp_path: Path) -> None:
    source = write(tmp_path / "x.csv", ["id", "n", "vazio"], [[str(i), str(i * 10), ""] for i in range(1, 31)])
    draft = draft_contract(source, "x")
    assert "# n: 30 values, 0 empty; range 10 .. 300; many distinct values" in draft.toml
    assert "# vazio: always empty (30 rows)" in draft.toml
    assert draft.rows == 30 and draft.columns == 3


@pytest.mark.parametrize("separator", [",", ";"])
def test_us_dates_are_settled_by_a_day_above_12(tmp_path: Path, separator: str) -> None:
    times = moments(50, seed=3)
    rows = [[str(i), f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}"] for i, t in enumerate(times)]
    rows.append(["999", "3/21/2017 0:00"])
    source = write(tmp_path / "us.csv", ["id", "quando"], rows, delimiter=separator, encoding="cp1252")
    columns, contract = drafted(tmp_path, source)
    assert columns["quando"]["type"] == "datetime"
    assert columns["quando"]["format"] == "%m/%d/%Y %H:%M"
    assert passes(source, contract)


def test_an_undecidable_order_is_day_first_and_says_so(tmp_path: Path) -> None:
    rows = [[str(i), f"{1 + i % 12:02d}/{1 + (i * 5) % 12:02d}/2024"] for i in range(40)]
    source = write(tmp_path / "amb.csv", ["id", "dia"], rows)
    draft = draft_contract(source, "amb")
    column = tomllib.loads(draft.toml)["columns"][1]
    assert (column["type"], column["format"]) == ("date", "%d/%m/%Y")
    assert "no day above 12: DD/MM/YYYY (Brazilian order) chosen, MM/DD/YYYY fits too" in draft.toml
    assert any("dia: no day above 12" in note for note in draft.notes)


def test_mixed_time_precision_and_iso_offsets_give_a_format_list(tmp_path: Path) -> None:
    rows = [["1", "2024-01-05T10:00"], ["2", "2024-01-05T10:00:30"], ["3", "2024-01-05T10:00:30.5-03:00"],
            ["4", "2024-01-06T11:00"], ["5", ""]]
    source = write(tmp_path / "iso.csv", ["id", "quando"], rows)
    columns, contract = drafted(tmp_path, source)
    quando = columns["quando"]
    assert quando["type"] == "datetime" and "required" not in quando
    assert quando["format"] == ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%#z"]
    assert passes(source, contract)


def test_decimals_with_either_separator(tmp_path: Path) -> None:
    rows = [["1", "1.234,56", "1234.56"], ["2", "R$ 2,50", "0.5"], ["3", "-3", "1e3"]]
    source = write(tmp_path / "dec.csv", ["id", "br", "us"], rows)
    columns, contract = drafted(tmp_path, source)
    assert (columns["br"]["type"], columns["us"]["type"]) == ("decimal", "decimal")
    assert passes(source, contract)


def test_an_id_with_a_repeated_value_is_not_unique(tmp_path: Path) -> None:
    rows = [["1", "a"], ["2", "b"], ["1", "c"]]
    source = write(tmp_path / "ids.csv", ["id_cliente", "codigo"], rows)
    columns, contract = drafted(tmp_path, source)
    assert "unique" not in columns["id_cliente"] and columns["codigo"]["unique"] is True
    assert passes(source, contract)


def test_sample_rows_stops_early_and_gzip_is_read(tmp_path: Path) -> None:
    rows = [[str(i), "x" if i > 10 else str(i)] for i in range(1, 2000)]
    source = write(tmp_path / "big.csv.gz", ["id", "valor"], rows)
    sampled = draft_contract(source, "big", sample_rows=10, chunk_bytes=256)
    assert sampled.sampled and sampled.rows == 10
    assert 'type = "int"' in sampled.toml.split('name = "valor"')[1]
    whole = draft_contract(source, "big", chunk_bytes=256)
    assert not whole.sampled and whole.rows == 1999
    assert 'type = "string"' in whole.toml.split('name = "valor"')[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"id,nome\r\n", "header only"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 40, "not a text file"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    assert main(["contract", "draft", str(source), "--name", "bad"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "ok.csv", ["id"], [["1"]])
    assert main(["contract", "draft", str(tmp_path / "missing.csv"), "--name", "x"]) == 2
    assert main(["contract", "draft", str(source), "--name", "Not A Name"]) == 2
    assert main(["contract", "draft", str(source), "--name", "x", "--sample-rows", "0"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    with pytest.raises(FileRejected, match="header only"):
        draft_contract(write(tmp_path / "h.csv", ["id"], []), "x")


def test_draft_then_validate_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "p.csv", ["SKU", "Preço", "Lançamento"],
                   [["A-1", "R$ 2,50", "05/01/2024"], ["A-2", "49,90", "13/02/2024"]], delimiter=";", encoding="cp1252")
    out = tmp_path / "drafts" / "produtos.toml"
    assert main(["contract", "draft", str(source), "--name", "produtos", "--out", str(out)]) == 0
    assert "3 columns from 2 rows" in capsys.readouterr().err
    assert main(["validate", str(source), "--contract", str(out)]) == 0


# -- the property: a draft passes on its own file ----------------------------------------
CELLS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.2f}"),
    st.floats(0, 1e6, allow_nan=False).map(brl),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31)).map(lambda d: f"{d:%d/%m/%Y}"),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31)).map(lambda d: f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}"),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31)).map(lambda d: d.isoformat(timespec="seconds")),
    st.sampled_from(["sim", "não", "true", "False", "S", "", " ", "SP", "rj", "0", "007", "N/A"]),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=8),
    st.text(alphabet="ab,;\"\n 1", max_size=6),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 5))
    header = [f"col {i}" if i else draw(st.sampled_from(["id", "codigo", "x"])) for i in range(width)]
    kinds = [draw(st.lists(CELLS, min_size=1, max_size=4)) for _ in range(width)]
    height = draw(st.integers(1, 25))
    rows = [[draw(st.sampled_from(kinds[c])) if draw(st.booleans()) else draw(CELLS) for c in range(width)] for _ in range(height)]
    # a row whose every field is blank is a blank line, not a row: keep one field non-blank
    return header, [row if any(v.strip() for v in row) else ["z", *row[1:]] for row in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=tables(), delimiter=st.sampled_from([",", ";"]))
def test_a_draft_always_passes_on_its_own_file(tmp_path: Path, table: tuple[list[str], list[list[str]]], delimiter: str) -> None:
    header, rows = table
    source = write(tmp_path / "prop.csv", header, rows, delimiter=delimiter)
    try:
        draft = draft_contract(source, "amostra", chunk_bytes=256)
    except FileRejected:
        return  # a file the reader itself refuses (e.g. a header it cannot find)
    contract = tmp_path / "amostra.toml"
    contract.write_text(draft.toml, "utf-8")
    report = process_file(source, parse_contract(contract), chunk_bytes=128)
    # a record with the wrong number of fields (a one-column file whose values hold the
    # other delimiter) is the reader's call, whatever the contract: the draft says so
    ragged = report.failures.pop("row", {}).get("field_count", 0)
    assert report.failures == {}, (report.failures, draft.toml)
    assert not ragged or any(f"{ragged} records have the wrong number" in n for n in draft.notes)
