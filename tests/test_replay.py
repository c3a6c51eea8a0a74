"""`ivi replay`: only the quarantined rows go through the pipeline again, and only once."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivi.cli import main
from flows.replay import ReplayRefused, replay, replay_key
from objectstore.output_names import fits
from objectstore.store import OutputKeys
from ivi.settings import Settings
from processing.contract import load_contract
from processing.replay import REUSED_ID_REASON, ReplayError, build_replay
from processing.report import Report
from processing.run import process_file
from tests.pipeline_support import read_object, s3, upload, wait_for_report

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
HEADER = "id_venda;data_venda;cliente;produto;categoria;quantidade;preco_unitario;valor_total;uf"


def rejected_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def process_and_replay(tmp_path: Path, name: str, data: bytes, contract: str = "vendas") -> tuple[Report, Path]:
    """Process `data` as file `name`, then build the replay of its quarantine."""
    source = tmp_path / name
    source.write_bytes(data)
    report = process_file(source, load_contract(contract), tmp_path / "first")
    replay_file = tmp_path / "replay.csv"
    build_replay(source, Path(report.outputs["rejected"]), replay_file)
    return report, replay_file


# -- the builder ---------------------------------------------------------------------------
def test_the_replay_holds_the_exact_records_of_the_quarantined_rows_and_nothing_else(tmp_path: Path) -> None:
    good = "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;SP"
    quoted = '2;05/01/2024;"Bia; ""B""\nSilva";Caneta;Papelaria;1;10;10;XX'  # `;` and a line break inside
    missing = "3;2024-01-06;;Lápis;Papelaria;1;10;10;RJ"
    ragged = "4;1;2"
    text = "\n".join([HEADER, good, quoted, "", missing, ragged, "5;2024-01-07;Caio;P;C;1;1;1;MG", ""])
    report, replay_file = process_and_replay(tmp_path, "vendas.csv", text.encode("utf-8"))
    assert (report.exported_rows, report.quarantined_rows) == (2, 3)
    assert replay_file.read_text(encoding="utf-8") == "\n".join([HEADER, quoted, missing, ragged, ""])


def test_a_comma_file_with_crlf_line_ends_and_extra_columns_keeps_them(tmp_path: Path) -> None:
    header = "uf,id_venda,data_venda,cliente,produto,categoria,quantidade,preco_unitario,valor_total,nota"
    bad = 'XX,7,2024-01-05,"Souza, Ana","Caderno\r\n100 folhas",Papelaria,1,10,10,"ignored, but kept"'
    good = "SP,8,2024-01-05,Bia,Caneta,Papelaria,1,10,10,x"
    report, replay_file = process_and_replay(tmp_path, "v.csv", "\r\n".join([header, bad, good, ""]).encode())
    assert report.ignored_columns == ["nota"] and report.quarantined_rows == 1
    assert replay_file.read_bytes() == (header + "\n" + bad + "\n").encode()


def test_a_cp1252_file_is_replayed_as_utf8_with_its_decoded_header(tmp_path: Path) -> None:
    header = "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF"
    bad = "9;05/01/2024;João;Pão de Açúcar;Padaria;1;R$ 5,00;5,00;ZZ"
    text = "\n".join([header, "1;05/01/2024;Zé;Pão;Padaria;1;1;1;SP", bad, ""])
    report, replay_file = process_and_replay(tmp_path, "v.csv", text.encode("cp1252"))
    assert report.encoding == "windows-1252"
    assert replay_file.read_text(encoding="utf-8") == f"{header}\n{bad}\n"
    again = process_file(replay_file, load_contract("vendas"), tmp_path / "again")
    assert again.encoding == "utf-8"
    assert [r["_errors"] for r in rejected_rows(Path(again.outputs["rejected"]))] == [
        r["_errors"] for r in rejected_rows(Path(report.outputs["rejected"]))
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_files_with_a_bom_are_replayed_without_it(tmp_path: Path, encoding: str) -> None:
    bad = "9;05/01/2024;Ana;P;C;0;1;0;SP"  # quantidade below the minimum
    text = f"{HEADER}\n{bad}\n"
    _report, replay_file = process_and_replay(tmp_path, "v.csv", text.encode(encoding))
    assert replay_file.read_bytes() == text.encode("utf-8")


def test_a_gzipped_original_is_read_as_the_engine_reads_it(tmp_path: Path) -> None:
    bad = "9;05/01/2024;Ana;P;C;1;1;1;XX"
    _report, replay_file = process_and_replay(tmp_path, "v.csv", gzip.compress(f"{HEADER}\n{bad}\n".encode()))
    assert replay_file.read_text(encoding="utf-8") == f"{HEADER}\n{bad}\n"


def test_an_unterminated_quote_is_replayed_as_the_one_row_it_was(tmp_path: Path) -> None:
    text = f'{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n2;2024-01-05;"Bob;P;C;1;1;1;SP\n3;x\n4;y\n'
    report, replay_file = process_and_replay(tmp_path, "v.csv", text.encode())
    assert report.quarantined_rows == 1
    assert replay_file.read_text(encoding="utf-8") == f'{HEADER}\n2;2024-01-05;"Bob;P;C;1;1;1;SP\n3;x\n4;y\n'
    again = process_file(replay_file, load_contract("vendas"), tmp_path / "again")
    assert [r["_errors"] for r in rejected_rows(Path(again.outputs["rejected"]))] == [
        "row: unterminated quoted field"
    ]


def test_rows_whose_id_belongs_to_an_earlier_row_stay_in_quarantine(tmp_path: Path) -> None:
    text = "\n".join([
        HEADER,
        "1;2024-01-05;Ana;P;C;1;1;1;SP",
        "1;2024-01-06;Bia;P;C;1;1;1;SP",  # id 1 again, otherwise valid
        "2;2024-01-06;Caio;P;C;1;1;1;XX",
        "",
    ])
    source = tmp_path / "v.csv"
    source.write_text(text, encoding="utf-8")
    report = process_file(source, load_contract("vendas"), tmp_path / "first")
    reasons = [r["_errors"] for r in rejected_rows(Path(report.outputs["rejected"]))]
    assert any(REUSED_ID_REASON in reason for reason in reasons), reasons  # the engine's wording
    summary = build_replay(source, Path(report.outputs["rejected"]), tmp_path / "replay.csv")
    assert (summary.quarantined, summary.rows, summary.reused_ids) == (2, 1, 1)
    assert (tmp_path / "replay.csv").read_text("utf-8") == f"{HEADER}\n2;2024-01-06;Caio;P;C;1;1;1;XX\n"


def test_an_original_that_is_not_the_processed_version_is_refused(tmp_path: Path) -> None:
    first = f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n2;2024-01-05;Bia;P;C;1;1;1;XX\n"
    report, _ = process_and_replay(tmp_path, "v.csv", first.encode())
    changed = tmp_path / "changed.csv"
    changed.write_text(f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n2;2024-01-05;Bia;P;C;1;1;1;RJ\n", "utf-8")
    with pytest.raises(ReplayError, match=re.escape("other values (`uf`)")):
        build_replay(changed, Path(report.outputs["rejected"]), tmp_path / "replay2.csv")
    shorter = tmp_path / "shorter.csv"
    shorter.write_text(f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n", "utf-8")
    with pytest.raises(ReplayError, match="no record starts on line 3"):
        build_replay(shorter, Path(report.outputs["rejected"]), tmp_path / "replay3.csv")


def test_replay_keys_sit_beside_the_original_and_do_not_pile_up_suffixes() -> None:
    now = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
    assert replay_key("vendas/2026/nov ç.csv", now) == "vendas/2026/nov ç.replay-20261130T120005Z.csv"
    assert replay_key("vendas/nov.replay-20261130T120005Z.csv", datetime(2026, 12, 1, tzinfo=UTC)) == (
        "vendas/nov.replay-20261201T000000Z.csv"
    )


def test_the_replay_of_a_key_as_long_as_the_store_takes_is_a_key_it_takes_in_the_same_folder() -> None:
    now = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
    for key in (f"vendas/2026/{'n' * 251}.csv", "vendas/" + "/".join(["w" * 250] * 3) + "/" + "z" * 251 + ".csv"):  # 255, 1015 bytes
        assert fits(key, prefix_bytes=0, suffix_bytes=0)
        replayed = replay_key(key, now)
        assert fits(replayed, prefix_bytes=0, suffix_bytes=0), replayed
        assert replayed.rsplit("/", 1)[0] == key.rsplit("/", 1)[0]  # the same folder
        assert replayed.endswith(".replay-20261130T120005Z.csv")
        later = replay_key(replayed, datetime(2026, 12, 1, tzinfo=UTC))  # a replay's replay
        assert fits(later, prefix_bytes=0, suffix_bytes=0) and later.endswith(".replay-20261201T000000Z.csv")


# -- after a contract fix, without the stack ------------------------------------------------
def test_after_a_contract_fix_the_replay_exports_the_fixed_rows_and_no_row_twice(tmp_path: Path) -> None:
    """`uf` `DF` is refused by a contract that forgot it; the fixed contract takes it."""
    broken_dir, fixed_dir = tmp_path / "broken", tmp_path / "fixed"
    broken_dir.mkdir()
    fixed_dir.mkdir()
    fixed = (CONTRACTS / "vendas.toml").read_text(encoding="utf-8")
    assert '"DF", ' in fixed
    (fixed_dir / "vendas.toml").write_text(fixed, encoding="utf-8")
    (broken_dir / "vendas.toml").write_text(fixed.replace('"DF", ', ""), encoding="utf-8")
    rows = [f"{i};2024-01-{1 + i % 28:02d};Cliente {i};Caneta;Papelaria;2;5,00;10,00;{uf}"
            for i, uf in enumerate(["SP", "DF", "RJ", "df", "SP", "DF", "MG"] * 30)]
    rows += ["900;2024-01-05;;P;C;1;1;1;DF",  # still invalid after the fix (no cliente)
             "5;2024-01-05;Outro;P;C;1;1;1;SP",  # reuses id 5, which was exported
             "901;2024-01-05;X;P;C;1;1;1;SP;extra"]  # a field too many
    source = tmp_path / "vendas.csv"
    source.write_text("\n".join([HEADER, *rows, ""]), encoding="utf-8")

    first = process_file(source, load_contract("vendas", broken_dir), tmp_path / "first")
    assert (first.exported_rows, first.quarantined_rows) == (120, 93)  # 90 DF + the 3 above
    summary = build_replay(source, Path(first.outputs["rejected"]), tmp_path / "replay.csv")
    assert (summary.rows, summary.reused_ids) == (92, 1)

    second = process_file(tmp_path / "replay.csv", load_contract("vendas", fixed_dir), tmp_path / "second")
    assert (second.input_rows, second.exported_rows, second.quarantined_rows) == (92, 90, 2)
    exported_first = {row["id_venda"] for row in json.loads(Path(first.outputs["json"]).read_text("utf-8"))}
    exported_second = [row["id_venda"] for row in json.loads(Path(second.outputs["json"]).read_text("utf-8"))]
    assert len(exported_second) == len(set(exported_second)) == 90
    assert exported_first.isdisjoint(exported_second)  # nothing already exported comes back
    assert {row["uf"] for row in json.loads(Path(second.outputs["json"]).read_text("utf-8"))} == {"DF"}
    # what still fails, fails for what is still wrong: the `DF` reason is gone
    before = {r["_raw"] or r["id_venda"]: r["_errors"] for r in rejected_rows(Path(first.outputs["rejected"]))}
    after = {r["_raw"] or r["id_venda"]: r["_errors"] for r in rejected_rows(Path(second.outputs["rejected"]))}
    assert before["900"] == "cliente: required value missing; uf: not a Brazilian state code ('DF')"
    assert after == {
        "900": "cliente: required value missing",
        "901;2024-01-05;X;P;C;1;1;1;SP;extra": "row: has 10 fields, the header has 9",
    }


# -- on the running stack -------------------------------------------------------------------
MESSY = (
    "ID Venda;Data Venda;Cliente;Produto;Categoria;Quantidade;Preço Unitário;Valor Total;UF;Obs\n"
    "1;05/01/2024;Ana;Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp;ok\n"
    '2;2024-01-06;"Bia; ""B"" Souza";Lápis;Papelaria;1;10;10;XX;sem UF\n'
    "3;2024-01-06;Caio;Lápis;Papelaria;0;10;0;RJ;quantidade 0\n"
    "1;2024-01-07;Dani;Lápis;Papelaria;1;10;10;RJ;id repetido\n"
    "4;1;2\n"
    "5;2024-01-08;Edu;Borracha;Papelaria;3;2,50;7,50;MG;ok\n"
)


@pytest.mark.services
def test_a_replay_on_the_stack_brings_back_exactly_the_quarantined_rows_once(stack: Settings) -> None:
    key = "vendas/replay/messy.csv"
    etag = upload(stack, key, MESSY.encode("cp1252"))
    first = wait_for_report(stack, key, etag)
    assert (first["exported_rows"], first["quarantined_rows"]) == (2, 4)
    first_rejected = list(csv.DictReader(io.StringIO(
        read_object(stack, stack.quarantine_bucket, "vendas/replay/messy.rejected.csv").decode("utf-8")
    )))

    planned = replay(key, stack, dry_run=True)
    assert not planned.uploaded and (planned.rows, planned.reused_ids) == (3, 1)
    done = replay(key, stack)
    assert done.uploaded and done.key.startswith("vendas/replay/messy.replay-") and done.rows == 3
    second = wait_for_report(stack, done.key)
    assert second["contract"] == "vendas" and second["encoding"] == "utf-8"
    assert (second["input_rows"], second["exported_rows"], second["quarantined_rows"]) == (3, 0, 3)
    replay_rejected = list(csv.DictReader(io.StringIO(read_object(
        stack, stack.quarantine_bucket, done.key.removesuffix(".csv") + ".rejected.csv"
    ).decode("utf-8"))))
    expected = [r["_errors"] for r in first_rejected if REUSED_ID_REASON not in r["_errors"]]
    assert [r["_errors"] for r in replay_rejected] == expected
    assert [r["cliente"] for r in replay_rejected][:2] == ['Bia; "B" Souza', "Caio"]

    with pytest.raises(ReplayRefused, match="already replayed as"):
        replay(key, stack)


@pytest.mark.services
def test_a_file_rejected_as_a_whole_is_copied_back_and_rejected_again_for_the_same_reason(
    stack: Settings,
) -> None:
    key = "vendas/replay/sem-uf.csv"
    etag = upload(stack, key, b"id_venda;data_venda;cliente\n1;2024-01-05;Ana\n")
    first = wait_for_report(stack, key, etag)
    assert first["status"] == "rejected"
    done = replay(key, stack)
    assert done.uploaded and done.rows is None
    assert read_object(stack, stack.raw_bucket, done.key) == read_object(stack, stack.quarantine_bucket, OutputKeys.for_key(key).original)
    second = wait_for_report(stack, done.key)
    assert (second["status"], second["reason"]) == ("rejected", first["reason"])


@pytest.mark.services
def test_the_command_says_why_there_is_nothing_to_replay(
    stack: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in stack.child_env().items():
        monkeypatch.setenv(name, value)
    assert main(["replay", "vendas/replay/never-uploaded.csv"]) == 1
    assert "no quarantine for vendas/replay/never-uploaded.csv" in capsys.readouterr().err

    key = "vendas/replay/clean.csv"
    etag = upload(stack, key, f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n".encode())
    wait_for_report(stack, key, etag)
    assert main(["replay", f"s3://{stack.raw_bucket}/{key}"]) == 1
    assert "quarantined no rows" in capsys.readouterr().err

    key = "vendas/replay/only-reused-ids.csv"
    etag = upload(stack, key, f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;SP\n1;2024-01-06;Bia;P;C;1;1;1;SP\n".encode())
    wait_for_report(stack, key, etag)
    assert main(["replay", key]) == 1
    assert "nothing to replay" in capsys.readouterr().err

    key = "vendas/replay/gone.csv"
    etag = upload(stack, key, f"{HEADER}\n1;2024-01-05;Ana;P;C;1;1;1;XX\n".encode())
    wait_for_report(stack, key, etag)
    assert main(["replay", key, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"would upload (dry run) s3://{stack.raw_bucket}/vendas/replay/gone.replay-")
    assert f"1 row quarantined from {key}" in printed
    s3(stack).remove_object(stack.raw_bucket, key)
    assert main(["replay", key, "--dry-run"]) == 1
    assert "no longer exists" in capsys.readouterr().err
