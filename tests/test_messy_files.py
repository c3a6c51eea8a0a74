"""Messy files with a known ground truth, through `ivi process`, compared EXACTLY with that truth.

The files and their truth come from bench/generate_messy.py, an independent implementation of
docs/processing.md (it never imports `processing`). Every encoding the engine must read, both
delimiters and both shipped contracts are covered; one file is large enough to span several
engine chunks, and the prototype's own sample files are checked against counts made by hand.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivi.cli import main
from ivi.demo import SAMPLES_DIR
from tests.messy_support import load_generator



gm = load_generator()

ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "utf-16"]
DELIMITERS = [",", ";"]
CONTRACTS = ["vendas", "clientes"]
COMBOS = [(c, e, d) for c in CONTRACTS for e in ENCODINGS for d in DELIMITERS]


@dataclass
class Run:
    """One generated file, its truth, and what `ivi process` made of it."""

    contract: str
    truth: dict[str, Any]
    code: int
    out: Path
    stem: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / f"{self.stem}.report.json").read_text(encoding="utf-8"))

    def exported_csv(self) -> list[dict[str, str]]:
        with open(self.out / f"{self.stem}.csv", encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def exported_csv_header(self) -> list[str]:
        with open(self.out / f"{self.stem}.csv", encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle))

    def exported_json(self) -> list[dict[str, Any]]:
        return json.loads((self.out / f"{self.stem}.json").read_text(encoding="utf-8"))

    def rejected(self) -> list[dict[str, str]]:
        path = self.out / f"{self.stem}.rejected.csv"
        if not path.exists():
            return []
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))


def run_generated(base: Path, contract: str, rows: int, seed: int, **options: Any) -> Run:
    source = base / "in" / f"{contract}_messy.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    truth = gm.generate(source, contract, rows, seed, **options)
    out = base / "out"
    code = main(["process", str(source), "--contract", contract, "--out", str(out)])
    return Run(contract, truth, code, out, source.stem)


def combo_id(combo: tuple[str, str, str]) -> str:
    contract, encoding, delimiter = combo
    return f"{contract}-{encoding}-{'comma' if delimiter == ',' else 'semicolon'}"


@pytest.fixture(scope="module", params=COMBOS, ids=combo_id)
def messy_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    contract, encoding, delimiter = request.param
    seed = 1000 + COMBOS.index(request.param)
    newline = "\r\n" if encoding in ("cp1252", "utf-16") else "\n"
    return run_generated(tmp_path_factory.mktemp("messy"), contract, 3000, seed,
                         encoding=encoding, delimiter=delimiter, newline=newline)


# --------------------------------------------------------------------------------------------
# Comparison helpers (exact, typed)
# --------------------------------------------------------------------------------------------


def nonzero(failures: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Drop zero counts and empty columns; every non-zero count must still match exactly."""
    out = {col: {chk: n for chk, n in checks.items() if n} for col, checks in failures.items()}
    return {col: checks for col, checks in out.items() if checks}


def column_types(contract: str) -> dict[str, str]:
    return {c.name: c.type for c in gm.load_contract(contract).columns}


def typed_from_csv(value: str, kind: str) -> Any:
    if value == "":
        return None
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return float(value)
    return value


def value_mismatches(actual: dict[str, Any], expected: dict[str, Any], types: dict[str, str],
                     strict_json: bool) -> list[str]:
    """Column-by-column differences, empty when the exported row is exactly the clean row."""
    problems = []
    for column, want in expected.items():
        if column not in actual:
            problems.append(f"{column}: absent (expected {want!r})")
            continue
        got = actual[column]
        kind = types[column]
        if want is None:
            ok = got is None
        elif kind == "decimal":
            ok = isinstance(got, (int, float)) and not isinstance(got, bool) and abs(
                got - want) <= 1e-6
        elif kind == "int":
            ok = (isinstance(got, int) and not isinstance(got, bool) if strict_json else True
                  ) and got == want
        else:
            ok = got == want
        if not ok:
            problems.append(f"{column}: got {got!r}, expected {want!r}")
    return problems


def assert_sample_exported(run: Run, exported: list[dict[str, Any]], from_csv: bool) -> None:
    types = column_types(run.contract)
    id_col = gm.load_contract(run.contract).id_column
    rows = []
    for row in exported:
        rows.append({k: typed_from_csv(v, types[k]) for k, v in row.items()} if from_csv else row)
    by_id = {row[id_col]: row for row in rows if row.get(id_col) is not None}
    expected = run.truth["expected"]
    assert len(expected) >= 100, "the truth should sample enough exported rows"
    problems = {}
    for row_id, want in expected.items():
        got = by_id.get(row_id)
        if got is None:
            problems[row_id] = ["row missing from the export"]
            continue
        diff = value_mismatches(got, want, types, strict_json=not from_csv)
        if diff:
            problems[row_id] = diff
    assert not problems, f"{len(problems)} sampled rows differ, e.g. {list(problems.items())[:5]}"


# --------------------------------------------------------------------------------------------
# Every encoding x delimiter x contract
# --------------------------------------------------------------------------------------------


def test_process_exits_zero_when_rows_are_quarantined(messy_run: Run) -> None:
    assert messy_run.code == 0


def test_every_row_is_counted_exactly_once(messy_run: Run) -> None:
    report, truth = messy_run.report, messy_run.truth
    counts = ("input_rows", "exported_rows", "quarantined_rows", "duplicate_rows")
    assert {k: report[k] for k in counts} == {k: truth[k] for k in counts}


def test_failures_are_counted_per_column_and_check(messy_run: Run) -> None:
    assert nonzero(messy_run.report["failures"]) == messy_run.truth["failures"]


def test_quarantined_lines_are_exactly_the_invalid_rows(messy_run: Run) -> None:
    lines = {int(row["_line"]) for row in messy_run.rejected()}
    truth = messy_run.truth["quarantined_lines"]
    assert lines == truth, (f"missing {sorted(truth - lines)[:20]}, "
                            f"unexpected {sorted(lines - truth)[:20]}")


def test_each_quarantined_row_gives_its_reasons_in_contract_order(messy_run: Run) -> None:
    contract = gm.load_contract(messy_run.contract)
    wrong = {}
    for row in messy_run.rejected():
        line = int(row["_line"])
        want = messy_run.truth["errors"].get(line)
        if want is None:
            continue  # reported by the line-set test
        parts = row["_errors"].split("; ")
        prefixes = [gm.message_prefix(contract, *item.split(":")) for item in want]
        if len(parts) != len(prefixes) or not all(
                part.startswith(prefix) for part, prefix in zip(parts, prefixes, strict=True)):
            wrong[line] = (row["_errors"], prefixes)
    assert not wrong, f"{len(wrong)} rows, e.g. {list(wrong.items())[:5]}"


def test_exported_csv_holds_the_clean_values(messy_run: Run) -> None:
    assert messy_run.exported_csv_header() == messy_run.truth["columns"]
    exported = messy_run.exported_csv()
    assert len(exported) == messy_run.truth["exported_rows"]
    assert_sample_exported(messy_run, exported, from_csv=True)


def test_exported_json_holds_the_clean_values(messy_run: Run) -> None:
    exported = messy_run.exported_json()
    assert len(exported) == messy_run.truth["exported_rows"]
    assert all(list(row) == messy_run.truth["columns"] for row in exported[:50])
    assert_sample_exported(messy_run, exported, from_csv=False)


def test_report_names_encoding_delimiter_and_ignored_column(messy_run: Run) -> None:
    report, truth = messy_run.report, messy_run.truth
    assert report["encoding"] == truth["encoding"]
    assert report["delimiter"] == truth["delimiter"]
    assert report["contract"] == messy_run.contract
    ignored = [gm.normalise_name(name) for name in report["ignored_columns"]]
    assert ignored == truth["ignored_columns"]


# --------------------------------------------------------------------------------------------
# Behaviours a user relies on, on one file each
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendas_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_generated(tmp_path_factory.mktemp("vendas"), "vendas", 5000, 42)


def test_duplicates_far_apart_are_dropped_and_counted(vendas_run: Run) -> None:
    pairs = vendas_run.truth["duplicate_pairs"]
    assert any(later - earlier == 1 for earlier, later in pairs), "adjacent duplicates exist"
    assert any(later - earlier > 1000 for earlier, later in pairs), "far duplicates exist"
    assert vendas_run.report["duplicate_rows"] == vendas_run.truth["duplicate_rows"]
    ids = [row["id_venda"] for row in vendas_run.exported_csv()]
    assert len(ids) == len(set(ids)), "a dropped duplicate must not reach the export"


def test_reused_id_with_different_content_is_quarantined(vendas_run: Run) -> None:
    unique_lines = {line for line, errs in vendas_run.truth["errors"].items()
                    if "id_venda:unique" in errs}
    assert len(unique_lines) >= 10
    rejected = {int(r["_line"]): r["_errors"] for r in vendas_run.rejected()}
    missing = {line for line in unique_lines
               if "id_venda: id already used by an earlier row" not in rejected.get(line, "")}
    assert not missing, f"rows with a reused id not quarantined as such: {sorted(missing)[:10]}"


def test_rows_invalid_for_several_reasons_count_every_failure(vendas_run: Run) -> None:
    multi = {line: errs for line, errs in vendas_run.truth["errors"].items() if len(errs) > 1}
    assert len(multi) >= 10
    rejected = {int(r["_line"]): r["_errors"] for r in vendas_run.rejected()}
    wrong = {line: (rejected.get(line), errs) for line, errs in multi.items()
             if line not in rejected or len(rejected[line].split("; ")) != len(errs)}
    assert not wrong, f"e.g. {list(wrong.items())[:5]}"


# --------------------------------------------------------------------------------------------
# A file spanning several engine chunks
# --------------------------------------------------------------------------------------------

ENGINE_CHUNK_BYTES = 8 * 1024 * 1024  # processing/source.py reads 8 MiB at a time


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_generated(tmp_path_factory.mktemp("big"), "vendas", 400_000, 7,
                         encoding="cp1252", delimiter=";", newline="\r\n")


def test_duplicates_and_reused_ids_are_found_across_chunks(big_run: Run) -> None:
    source = big_run.out.parent / "in" / f"{big_run.stem}.csv"
    rows_per_chunk = ENGINE_CHUNK_BYTES / (source.stat().st_size / big_run.truth["input_rows"])
    assert source.stat().st_size > 3 * ENGINE_CHUNK_BYTES, "the file must span several chunks"
    spans = [later - earlier for earlier, later in big_run.truth["duplicate_pairs"]]
    assert sum(span > 2 * rows_per_chunk for span in spans) >= 100
    reuse_spans = [later - earlier for earlier, later in big_run.truth["reused_id_pairs"]]
    assert sum(span > 2 * rows_per_chunk for span in reuse_spans) >= 100
    report, truth = big_run.report, big_run.truth
    counts = ("input_rows", "exported_rows", "quarantined_rows", "duplicate_rows")
    assert {k: report[k] for k in counts} == {k: truth[k] for k in counts}
    assert nonzero(report["failures"]) == truth["failures"]


def test_quarantined_lines_are_exact_across_chunks(big_run: Run) -> None:
    lines = {int(row["_line"]) for row in big_run.rejected()}
    truth = big_run.truth["quarantined_lines"]
    assert lines == truth, (f"missing {sorted(truth - lines)[:20]}, "
                            f"unexpected {sorted(lines - truth)[:20]}")


def test_clean_values_are_exact_across_chunks(big_run: Run) -> None:
    exported = big_run.exported_csv()
    assert len(exported) == big_run.truth["exported_rows"]
    assert_sample_exported(big_run, exported, from_csv=True)


# --------------------------------------------------------------------------------------------
# The prototype's sample files (facts counted independently: 10 valid rows; 23 duplicates)
# --------------------------------------------------------------------------------------------


def sample_file(name: str) -> Path:
    """One of the prototype's sample files, kept in the repository (never skipped)."""
    return SAMPLES_DIR / name


def test_prototype_mock_csv_exports_all_ten_rows(tmp_path: Path) -> None:
    source = sample_file("mock.csv")
    assert main(["process", str(source), "--contract", "clientes", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "mock.report.json").read_text(encoding="utf-8"))
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"],
            report["duplicate_rows"]) == (10, 10, 0, 0)
    assert nonzero(report["failures"]) == {}
    rows = json.loads((tmp_path / "mock.json").read_text(encoding="utf-8"))
    assert rows[0] == {
        "id_cliente": 1001, "idade": 29, "genero": "M", "estado_civil": "Solteiro",
        "renda_mensal": 3500.0, "tempo_como_cliente": 12, "numero_compras_mensal": 5,
        "valor_medio_compra": 150.0, "suporte_acionado": 2, "nps": 8, "churn": 0,
    }
    assert rows[5]["estado_civil"] == "Viúvo"
    assert [r["id_cliente"] for r in rows] == list(range(1001, 1011))


def test_prototype_10000_rows_sample_has_exactly_23_duplicates(tmp_path: Path) -> None:
    source = sample_file("mock_10000_linhas.csv")
    assert main(["process", str(source), "--contract", "clientes", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "mock_10000_linhas.report.json").read_text(encoding="utf-8"))
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"],
            report["duplicate_rows"]) == (10_000, 9_977, 0, 23)
    assert set(report["missing_optional_columns"]) == {
        "id_cliente", "estado_civil", "tempo_como_cliente", "numero_compras_mensal",
        "valor_medio_compra", "suporte_acionado", "nps", "churn"}
    with open(tmp_path / "mock_10000_linhas.csv", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["idade", "genero", "renda_mensal"]
        assert sum(1 for _ in reader) == 9_977
