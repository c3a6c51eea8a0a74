"""The cleaning rules of design.md, value by value (pure logic, no files)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from processing.clean import column_cleaning, run_steps
from processing.contract import ColumnSpec, load_contract


def clean(spec: ColumnSpec, values: list[str]) -> list[object]:
    cleaning = column_cleaning(spec)
    frame = pl.DataFrame({spec.name: pl.Series(values, dtype=pl.String)})
    text = run_steps(frame, [cleaning.text_steps])
    return run_steps(text, [cleaning.typed_steps])[spec.name].to_list()


DECIMAL = ColumnSpec(name="preco", type="decimal")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1234.56", 1234.56),
        ("1.234,56", 1234.56),
        ("1234,56", 1234.56),
        ("R$ 1.234,56", 1234.56),
        ("R$1.234.567,8", 1234567.8),
        ("  -12,5 ", -12.5),
        ("0", 0.0),
        ("1.234", 1.234),  # no comma: the dot is the decimal point
        ("12,345.67", None),  # US thousands are not one of the accepted formats
        ("1.23,45", None),  # broken thousands grouping
        ("nan", None),
        ("inf", None),
        ("1e309", None),
        ("abc", None),
        ("", None),
    ],
)
def test_decimals_in_every_accepted_format(raw: str, value: float | None) -> None:
    assert clean(DECIMAL, [raw]) == [value]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("2024-02-29", dt.date(2024, 2, 29)),
        ("05/01/2024", dt.date(2024, 1, 5)),
        ("31/02/2024", None),
        ("2024-02-30", None),
        ("2023-02-29", None),
        ("2024/01/05", None),
        ("01-05-2024", None),
    ],
)
def test_dates_iso_or_brazilian_and_only_real_ones(raw: str, value: dt.date | None) -> None:
    assert clean(ColumnSpec(name="d", type="date"), [raw]) == [value]


def test_integers_reject_fractions_and_values_beyond_int64() -> None:
    spec = ColumnSpec(name="n", type="int")
    assert clean(spec, [" 42 ", "+3", "-7", "1.5", "99999999999999999999", "0x10"]) == [
        42, 3, -7, None, None, None,
    ]


def test_genero_accepts_words_in_any_case() -> None:
    spec = load_contract("clientes").column("genero")
    assert clean(spec, ["m", "F", "Masculino", "FEMININO", " outro ", "x"]) == [
        "M", "F", "M", "F", "O", "x",
    ]


def test_estado_civil_is_title_cased_with_or_without_accents() -> None:
    spec = load_contract("clientes").column("estado_civil")
    assert clean(spec, ["viúvo", "VIUVO", "união estável", "UNIAO ESTAVEL", "casado"]) == [
        "Viúvo", "Viúvo", "União Estável", "União Estável", "Casado",
    ]


def test_churn_accepts_words_and_digits() -> None:
    spec = load_contract("clientes").column("churn")
    assert clean(spec, ["sim", "NÃO", "nao", "true", "False", "1", "0", "2"]) == [1, 0, 0, 1, 0, 1, 0, 2]


def test_uf_is_upper_cased_and_trimmed() -> None:
    spec = load_contract("vendas").column("uf")
    assert clean(spec, [" sp ", "Rj", "mG", "xx"]) == ["SP", "RJ", "MG", "xx"]


def test_strings_are_trimmed_and_empty_means_missing() -> None:
    spec = ColumnSpec(name="s", type="string")
    assert clean(spec, ["  Ana  ", "\tBob", "   ", ""]) == ["Ana", "Bob", None, None]
