"""The messy-file generator's own checks: its truth must be right before it judges the engine.

The truth `generate` returns is computed from its plan; here it is recomputed a second way, by
reading the written bytes back with the standard `csv` module (`reference_truth`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.messy_support import load_generator



gm = load_generator()

CASES = [("vendas", "utf-8", ","), ("vendas", "utf-16", ";"), ("clientes", "cp1252", ","),
         ("clientes", "utf-8-sig", ";")]


@pytest.mark.parametrize(("contract", "encoding", "delimiter"), CASES)
def test_truth_matches_an_independent_reading_of_the_file(tmp_path: Path, contract: str,
                                                           encoding: str, delimiter: str) -> None:
    path = tmp_path / "f.csv"
    truth = gm.generate(path, contract, 4000, 3, encoding=encoding, delimiter=delimiter,
                        newline="\r\n" if encoding == "utf-16" else "\n")
    ref = gm.reference_truth(path, contract, encoding, delimiter)
    for key in ("input_rows", "exported_rows", "quarantined_rows", "duplicate_rows", "failures",
                "quarantined_lines"):
        assert truth[key] == ref[key], key
    for row_id, values in truth["expected"].items():
        assert gm._same_values(values, ref["clean_by_id"][row_id]), row_id


def test_the_vendas_mix_holds_every_kind_of_mess(tmp_path: Path) -> None:
    truth = gm.generate(tmp_path / "v.csv", "vendas", 3000, 5)
    f = truth["failures"]
    assert f["row"]["field_count"] > 0
    for column in ("id_venda", "data_venda", "cliente", "produto", "categoria", "quantidade",
                   "preco_unitario", "valor_total", "uf"):
        assert f[column]["required"] > 0, column
    assert f["id_venda"]["type"] and f["id_venda"]["unique"]
    assert f["data_venda"]["type"] and f["quantidade"]["type"] and f["quantidade"]["min"]
    assert f["preco_unitario"]["type"] and f["preco_unitario"]["min"]
    assert f["valor_total"]["type"] and f["valor_total"]["valor_total_matches"]
    assert f["uf"]["allowed"]
    assert sum(len(errors) > 1 for errors in truth["errors"].values()) >= 10
    assert 0.04 <= truth["quarantined_rows"] / truth["input_rows"] <= 0.065
    pairs = truth["duplicate_pairs"]
    assert any(b - a == 1 for a, b in pairs) and any(b - a > 500 for a, b in pairs)
    text = (tmp_path / "v.csv").read_text(encoding="utf-8")
    for spelling in ('"R$ ', '"1.', "/20", '"Kit\nCama Box"', " sp ", '""', "31/02/2024"):
        assert spelling in text, spelling


def test_the_clientes_mix_holds_aliases_and_every_check(tmp_path: Path) -> None:
    truth = gm.generate(tmp_path / "c.csv", "clientes", 3000, 5, delimiter=";")
    f = truth["failures"]
    assert f["idade"].keys() >= {"required", "type", "min", "max"}
    assert f["genero"].keys() >= {"required", "allowed"}
    assert f["renda_mensal"].keys() >= {"required", "type", "min"}
    assert f["churn"]["allowed"] and f["nps"]["max"] and f["id_cliente"]["unique"]
    text = (tmp_path / "c.csv").read_text(encoding="utf-8")
    for spelling in (";masculino;", ";FEMININO;", ";não", ";SIM", "uniao estavel", "VIÚVO"):
        assert spelling in text, spelling


def test_generation_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    one = gm.generate(tmp_path / "a.csv", "vendas", 2000, 9, encoding="cp1252")
    two = gm.generate(tmp_path / "b.csv", "vendas", 2000, 9, encoding="cp1252")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert one["failures"] == two["failures"]


def test_decimal_spellings_parse_to_the_same_value() -> None:
    for style in range(gm.DEC_STYLES):
        assert gm.parse_decimal(gm.fmt_decimal(123456789, style)) == gm.Decimal("1234567.89")
    assert gm.parse_decimal("NaN") is None and gm.parse_decimal("1,2,3") is None
    assert gm.parse_date("31/02/2024") is None and gm.parse_date("29/02/2024") is not None
