"""process_file end to end on small files: chunking never changes the result."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from processing.contract import load_contract
from processing.errors import FileRejected
from processing.run import process_file
from processing.source import TextSource
from processing.write import OutputFiles

HEADER = "id_venda;data_venda;cliente;produto;categoria;quantidade;preco_unitario;valor_total;uf\n"


def messy_rows(count: int) -> list[str]:
    """Rows with every outcome, repeating so that duplicates and reused ids span chunks."""
    rows = []
    for i in range(count):
        rows.append(f"{i};05/01/2024;Cliente {i};Caneta;Papelaria;2;R$ 1.234,56;2469,12;sp\n")
        if i % 7 == 0:
            rows.append(f"{i};2024-01-05;\"Ana\nMaria\";Lápis;Papelaria;1;10;10;RJ\n")  # id reused
        if i % 11 == 0:
            rows.append(rows[len(rows) // 2])  # an exact duplicate of an earlier row
        if i % 13 == 0:
            rows.append(f"x{i};31/02/2024;;P;C;0;abc;1;XX\n")  # invalid in many ways
        if i % 17 == 0:
            rows.append("1;2;3\n")  # ragged
        if i % 19 == 0:
            rows.append("\n")  # blank line, not a row
    return rows


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def outputs(out: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir())}


@pytest.mark.parametrize("chunk_bytes", [64, 1000, 7919])
def test_small_chunks_give_exactly_the_same_outputs_as_one_chunk(tmp_path: Path, chunk_bytes: int) -> None:
    source = write(tmp_path / "vendas.csv", HEADER + "".join(messy_rows(300)))
    vendas = load_contract("vendas")
    whole = process_file(source, vendas, tmp_path / "whole")
    chunked = process_file(source, vendas, tmp_path / "chunked", chunk_bytes=chunk_bytes)
    assert whole.accounted and chunked.accounted
    assert whole.duplicate_rows > 0 and whole.quarantined_rows > 0
    assert outputs(tmp_path / "whole")["vendas.csv"] == outputs(tmp_path / "chunked")["vendas.csv"]
    assert outputs(tmp_path / "whole")["vendas.rejected.csv"] == outputs(tmp_path / "chunked")["vendas.rejected.csv"]
    assert whole.failures == chunked.failures


def test_a_record_longer_than_a_chunk_between_short_ones_is_read_whole(tmp_path: Path) -> None:
    """The read buffer grows for the long record, then serves the short chunks after it."""
    long_name = "Ana " + "x" * 5000 + ";\nstill Ana"
    rows = [f"{i};2024-01-05;Cliente {i};Caneta;Papelaria;1;1;1;SP\n" for i in range(60)]
    rows.insert(30, f'999;2024-01-05;"{long_name}";Caneta;Papelaria;1;1;1;SP\n')
    source = write(tmp_path / "vendas.csv", HEADER + "".join(rows), encoding="cp1252")
    vendas = load_contract("vendas")
    whole = process_file(source, vendas, tmp_path / "whole")
    chunked = process_file(source, vendas, tmp_path / "chunked", chunk_bytes=700)
    assert (whole.exported_rows, chunked.exported_rows, chunked.quarantined_rows) == (61, 61, 0)
    assert outputs(tmp_path / "whole").keys() == outputs(tmp_path / "chunked").keys()
    assert outputs(tmp_path / "whole")["vendas.csv"] == outputs(tmp_path / "chunked")["vendas.csv"]
    assert long_name in (tmp_path / "chunked" / "vendas.csv").read_text("utf-8")


def test_a_header_whose_crlf_is_cut_by_a_read_keeps_the_line_numbers(tmp_path: Path) -> None:
    """A CRLF after the header split between two reads is one line break, not a line
    break and a blank line (found by the property test). Every header length up to 300
    bytes puts the split, somewhere, at the reads of 64-byte chunks."""
    rows = "1;2024-01-05;Ana;Caneta;Papelaria;1;1;1;SP;\r\n2;2024-01-05;Bia;Caneta;Papelaria;1;1;1;XX;\r\n"
    for header_bytes in range(len(HEADER) + 4, 300):
        header = HEADER.rstrip("\n") + ";obs"
        source = write(tmp_path / "vendas.csv", header.ljust(header_bytes, "x") + "\r\n" + rows)
        with TextSource(source, chunk_bytes=64) as text:
            first = next(text.chunks())
        assert (first.first_line, first.data[:2]) == (2, b"1;"), header_bytes
    report = process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=64)
    rejected = pl.read_csv(tmp_path / "out" / "vendas.rejected.csv", infer_schema=False)
    assert (report.exported_rows, rejected["_line"].to_list()) == (1, ["3"])


def test_the_report_lists_failures_in_the_contracts_order_whatever_the_chunks(tmp_path: Path) -> None:
    # the first chunk of 64 bytes holds only a good row: kinds of failure arrive out of order
    source = write(tmp_path / "vendas.csv", HEADER + "".join(messy_rows(60)))
    vendas = load_contract("vendas")
    for chunk_bytes in (64, 1 << 20):
        failures = process_file(source, vendas, None, chunk_bytes=chunk_bytes).failures
        assert list(failures) == [c for c in ("row", *vendas.column_names) if c in failures]
        assert list(failures["id_venda"]) == ["type", "unique"]


def test_counts_and_reasons_of_a_messy_file(tmp_path: Path) -> None:
    source = write(tmp_path / "vendas.csv", HEADER + "".join(messy_rows(30)))
    report = process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=100)
    # 30 good rows, ids 0,7,14,21,28 reused (5), x0,x13,x26 invalid (3), 2 ragged (0, 17),
    # duplicates at i = 0, 11, 22 (3); blank lines are not rows
    assert (report.input_rows, report.exported_rows, report.quarantined_rows, report.duplicate_rows) == (
        43, 30, 10, 3,
    )
    assert report.failures["id_venda"] == {"unique": 5, "type": 3}
    assert report.failures["row"] == {"field_count": 2}
    assert report.failures["uf"] == {"allowed": 3}
    rejected = (tmp_path / "out" / "vendas.rejected.csv").read_text(encoding="utf-8")
    assert "uf: not a Brazilian state code ('XX')" in rejected
    assert "data_venda: not a date (YYYY-MM-DD or DD/MM/YYYY) ('31/02/2024')" in rejected
    rows = json.loads((tmp_path / "out" / "vendas.json").read_text(encoding="utf-8"))
    assert rows[0] == {
        "id_venda": 0, "data_venda": "2024-01-05", "cliente": "Cliente 0", "produto": "Caneta",
        "categoria": "Papelaria", "quantidade": 2, "preco_unitario": 1234.56,
        "valor_total": 2469.12, "uf": "SP",
    }


def test_a_late_windows_1252_byte_switches_the_encoding_without_mangling(tmp_path: Path) -> None:
    rows = [f"{i};2024-01-05;Cliente {i};Caneta;Papelaria;1;1;1;SP\n" for i in range(200)]
    rows.append("999;2024-01-05;João;Pão de Açúcar;Padaria;1;1;1;SP\n")
    source = write(tmp_path / "v.csv", HEADER + "".join(rows), encoding="cp1252")
    report = process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=512)
    assert report.encoding == "windows-1252"
    assert report.exported_rows == 201
    assert "999,2024-01-05,João,Pão de Açúcar,Padaria" in (tmp_path / "out" / "v.csv").read_text("utf-8")


def test_an_unterminated_quote_quarantines_the_rest_as_one_row(tmp_path: Path) -> None:
    text = HEADER + "1;2024-01-05;Ana;P;C;1;1;1;SP\n2;2024-01-05;\"Bob;P;C;1;1;1;SP\n3;x\n4;y\n"
    source = write(tmp_path / "v.csv", text)
    report = process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=40)
    assert (report.input_rows, report.exported_rows, report.quarantined_rows) == (2, 1, 1)
    rejected = (tmp_path / "out" / "v.rejected.csv").read_text("utf-8")
    assert "3,row: unterminated quoted field" in rejected


def test_a_rejected_file_leaves_no_output_behind(tmp_path: Path) -> None:
    """The Arrow stream of the clean rows (the flow's) included."""
    text = HEADER + "".join(f"{i};2024-01-05;A;P;C;1;1;1;SP\n" for i in range(50_000)) + "1;\x00\n"
    source = write(tmp_path / "v.csv", text)
    with pytest.raises(FileRejected, match="NUL byte on line 50002"):
        process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=64 * 1024,  # ~24 chunks
                     arrow=True)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_background_write_fails_the_file_and_leaves_no_output_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []
    real_write_chunk = OutputFiles.write_chunk

    def write_chunk_until_the_disk_is_full(self: OutputFiles, clean: pl.DataFrame, rejected: pl.DataFrame) -> None:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(clean.height)
        real_write_chunk(self, clean, rejected)

    monkeypatch.setattr(OutputFiles, "write_chunk", write_chunk_until_the_disk_is_full)
    source = write(tmp_path / "v.csv", HEADER + "".join(messy_rows(300)))
    with pytest.raises(OSError, match="No space left"):
        process_file(source, load_contract("vendas"), tmp_path / "out", chunk_bytes=1000)
    assert len(written) == 3 and list((tmp_path / "out").iterdir()) == []
