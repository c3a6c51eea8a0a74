"""`--contract` takes a name or a path to a .toml, in `ivi replay` too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivi.cli import main
from flows.replay import _check_rows
from processing.contract import is_contract_path, load_contract
from processing.errors import ContractError


@pytest.mark.parametrize(
    ("value", "is_path"),
    [("vendas", False), ("vendas.toml", True), ("drafts/vendas", True), ("./x.TOML", True), ("clientes", False)],
)
def test_a_toml_suffix_or_a_slash_makes_a_path(value: str, is_path: bool) -> None:
    assert is_contract_path(value) is is_path


def test_a_path_outside_contracts_loads_and_a_missing_one_is_a_clear_error(tmp_path: Path) -> None:
    draft = tmp_path / "rascunho.toml"
    draft.write_text('name = "rascunho"\n[[columns]]\nname = "id"\ntype = "int"\n', "utf-8")
    assert load_contract(str(draft)).name == "rascunho"
    with pytest.raises(ContractError, match="no contract file"):
        load_contract(str(tmp_path / "missing.toml"))
    with pytest.raises(ContractError, match="unknown contract 'nope' .*clientes, vendas"):
        load_contract("nope")


def test_replay_refuses_a_contract_its_folder_does_not_use(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", "vendas/2026/nov.csv", "--contract", "clientes", "--dry-run"]) == 2
    assert main(["replay", "vendas/2026/nov.csv", "--contract", str(tmp_path / "no.toml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "is processed with contract `vendas`, not `clientes`" in err
    assert "no contract file" in err and "Traceback" not in err


def test_replay_rows_are_checked_against_a_contract_file(tmp_path: Path) -> None:
    rows = tmp_path / "replay.csv"
    rows.write_text("id;quando\n1;3/21/2017 0:00\n2;2/30/2017 0:00\n3;12/19/2016 14:10\n", "utf-8")
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(
        'name = "eventos"\n[[columns]]\nname = "id"\ntype = "int"\n'
        '[[columns]]\nname = "quando"\ntype = "datetime"\nformat = "%m/%d/%Y %H:%M"\n',
        "utf-8",
    )
    assert _check_rows(rows, load_contract(str(fixed))) == ("eventos", 2, 1)
