"""Hostile inputs: whatever lands in the bucket, `ivi process` answers as docs/processing.md says.

Why this matters: the same engine runs inside the Prefect flow, so a file that crashes it
crashes a run (and, in the prototype, the web server). A user relies on three things:
a file that cannot be a table is refused with one readable line and leaves no half-written
outputs; a file that is a table has every row accounted for (exported, quarantined with a
reason and its physical line, or dropped as a duplicate); and no input ever yields a Python
traceback.

The corpus (`hostile_corpus.py`) builds every file in a temporary directory at test time.
Most cases run in-process through `ivi.cli.main` for speed; a handful also run through a
real `python -m ivi.cli` process to prove the installed command prints no traceback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.hostile_corpus import (
    CASES,
    PROCESSED,
    REJECTED,
    USAGE,
    VENDAS_COLUMNS,
    VENDAS_HEADER,
    Case,
    build_case,
    lines,
    vrow,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
csv.field_size_limit(sys.maxsize)  # the corpus carries 2 MB and 10 MB values


@dataclass(frozen=True)
class Run:
    """What one invocation of the command returned and printed."""

    rc: int
    stdout: str
    stderr: str


def run_in_process(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `ivi` through `ivi.cli.main`, as the console script does, capturing its output."""
    from ivi.cli import main

    capsys.readouterr()
    try:
        rc = main(list(argv))
    except SystemExit as exit_:  # `sys.exit(main())` would turn this into the same status
        rc = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capsys.readouterr()
    return Run(rc, out, err)


def start_subprocess(argv: Sequence[str]) -> subprocess.Popen[str]:
    """Start the real command in a fresh interpreter: what a user at a shell would see."""
    return subprocess.Popen(
        [sys.executable, "-m", "ivi.cli", *argv],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def finish_subprocess(process: subprocess.Popen[str]) -> Run:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return Run(-9, out, err + "\n[killed after 120 s]")
    return Run(process.returncode, out, err)


def process_argv(path: Path, contract: str, out_dir: Path) -> list[str]:
    return ["process", str(path), "--contract", contract, "--out", str(out_dir)]


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def tree(root: Path) -> set[str]:
    """Every file and directory under `root`, relative: to prove a command wrote nothing."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def short(text: str, limit: int = 2_000) -> str:
    """Keep assertion messages readable when outputs carry megabytes."""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


# ---------------------------------------------------------------------------- assertions


def assert_no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stdout, short(run.stdout)
    assert "Traceback" not in run.stderr, short(run.stderr)


def scrub(message: str, path: Path) -> str:
    """The message with the input's path and name blanked out."""
    return (
        message.replace(str(path), "<path>")
        .replace(str(path.parent), "<dir>")
        .replace(path.name, "<file>")
    )


def assert_one_line_reason(run: Run, case: Case, path: Path) -> None:
    """Exit 1 / 2: stderr is exactly one non-empty line that names the problem.

    The expected words are looked for in the message with the input's path blanked out:
    the path (pytest's tmp dir is named after the test, e.g. `..._an_empty_...`) must not
    be what satisfies "the message says the file is empty"."""
    expected = case.expected
    assert run.rc == expected.exit_code, (
        f"exit {run.rc}, expected {expected.exit_code}; stderr: {short(run.stderr)!r}"
    )
    message = run.stderr.strip()
    assert message, "the reason must be printed on stderr"
    assert "\n" not in message, f"stderr must be one line, got: {short(message)!r}"
    # The CLI turns any unexpected exception into "internal error (...)": a crash in disguise.
    assert "internal error" not in message, short(message)
    scrubbed = scrub(message, path)
    for substring in expected.stderr_has:
        haystack = message if substring in str(path) else scrubbed
        assert substring in haystack, f"{substring!r} not in stderr {short(message)!r}"
    if expected.stderr_any:
        lowered = scrubbed.lower()
        assert any(s.lower() in lowered for s in expected.stderr_any), (
            f"none of {expected.stderr_any} in stderr {short(message)!r}"
        )
    if expected.stderr_max_chars is not None:
        assert len(message) <= expected.stderr_max_chars, (
            f"a one-line human reason, not {len(message)} chars: {short(message, 300)!r}"
        )


@dataclass(frozen=True)
class Outputs:
    stem: str
    csv: Path
    json: Path
    rejected: Path
    report: Path


def find_outputs(out_dir: Path, input_path: Path) -> Outputs:
    """The one `<stem>.report.json` in `out_dir` and its siblings."""
    reports = sorted(out_dir.glob("*.report.json"))
    assert len(reports) == 1, f"expected one report, found {sorted(tree(out_dir))}"
    stem = reports[0].name.removesuffix(".report.json")
    if input_path.suffix == ".gz":
        # docs/processing.md does not say whether `x.csv.gz` gives stem `x` or `x.csv`.
        assert stem in {input_path.stem, input_path.name.removesuffix(".csv.gz")}, stem
    else:
        assert stem == input_path.stem, f"outputs named {stem!r}, input {input_path.name!r}"
    return Outputs(
        stem,
        out_dir / f"{stem}.csv",
        out_dir / f"{stem}.json",
        out_dir / f"{stem}.rejected.csv",
        reports[0],
    )


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def assert_processed(case: Case, run: Run, input_path: Path, out_dir: Path) -> None:
    """Exit 0: the report accounts for every row, and the outputs hold the promised values."""
    exp = case.expected
    assert run.rc == PROCESSED, f"exit {run.rc}, expected 0; stderr: {short(run.stderr)!r}"
    outputs = find_outputs(out_dir, input_path)
    report = json.loads(outputs.report.read_text(encoding="utf-8"))

    # Row accounting, then the exact counts.
    assert report["contract"] == case.contract
    counts = {k: report[k] for k in ("input_rows", "exported_rows", "quarantined_rows",
                                     "duplicate_rows")}
    assert counts["input_rows"] == (
        counts["exported_rows"] + counts["quarantined_rows"] + counts["duplicate_rows"]
    ), counts
    wanted = {
        "input_rows": exp.input_rows,
        "exported_rows": exp.exported,
        "quarantined_rows": exp.quarantined,
        "duplicate_rows": exp.duplicates,
    }
    assert counts == {k: (v if v is not None else counts[k]) for k, v in wanted.items()}

    for key, value in exp.report.items():
        assert report[key] == value, f"report[{key!r}] = {report[key]!r}, expected {value!r}"
    if exp.ignored_columns is not None:
        assert set(report["ignored_columns"]) == set(exp.ignored_columns)
    if exp.ignored_count is not None:
        assert len(set(report["ignored_columns"])) == exp.ignored_count
    if exp.missing_optional is not None:
        assert set(report["missing_optional_columns"]) == set(exp.missing_optional)
    for column, checks in exp.failures.items():
        for check, count in checks.items():
            got = report["failures"].get(column, {}).get(check)
            assert got == count, f"failures[{column}][{check}] = {got}, expected {count}"

    # <stem>.csv and <stem>.json hold exactly the exported rows, same columns.
    header, rows = read_csv(outputs.csv)
    assert len(rows) == counts["exported_rows"]
    if exp.csv_header is not None:
        assert tuple(header) == exp.csv_header
    records = json.loads(outputs.json.read_text(encoding="utf-8"))
    assert isinstance(records, list) and len(records) == counts["exported_rows"]
    for record in records[:50]:
        assert list(record) == header, "the JSON objects carry the CSV's columns"
    for (index, column), text in exp.csv_values.items():
        assert rows[index][column] == text, (
            f"csv row {index} {column}: {short(rows[index][column], 200)!r} != {text!r}"
        )
    for (index, column), number in exp.csv_numbers.items():
        raw = rows[index][column]
        assert "," not in raw and float(raw) == number, f"csv row {index} {column}: {raw!r}"
    for (index, column), length in exp.csv_value_lengths.items():
        assert len(rows[index][column]) == length, f"csv row {index} {column} truncated"
    for (index, column), value in exp.json_values.items():
        got = records[index][column]
        assert got == value and type(got) is type(value), (
            f"json row {index} {column}: {short(repr(got), 200)} != {value!r}"
        )

    # <stem>.rejected.csv exists exactly when rows were quarantined.
    if counts["quarantined_rows"] == 0:
        assert not outputs.rejected.exists(), "no rejected file when nothing is quarantined"
        assert not (exp.rejected or exp.rejected_first_error or exp.rejected_raw)
        return
    rej_header, rejected_rows = read_csv(outputs.rejected)
    assert rej_header[:2] == ["_line", "_errors"] and rej_header[-1] == "_raw", rej_header
    assert len(rejected_rows) == counts["quarantined_rows"]
    by_line = {int(row["_line"]): row for row in rejected_rows}
    assert len(by_line) == len(rejected_rows), "each rejected row starts on its own line"
    if exp.rejected:
        got_errors = {line: row["_errors"] for line, row in by_line.items()}
        assert got_errors == dict(exp.rejected)
    for line, first in exp.rejected_first_error.items():
        assert line in by_line, f"line {line} not quarantined; quarantined: {sorted(by_line)}"
        assert by_line[line]["_errors"].split("; ")[0] == first, by_line[line]["_errors"]
    for line, raw in exp.rejected_raw.items():
        assert by_line[line]["_raw"] == raw


def cases_with(exit_code: int) -> Iterator[object]:
    """The corpus cases expecting `exit_code`, each with its name as the test id."""
    for case in CASES:
        if case.expected.exit_code == exit_code:
            yield pytest.param(case, id=case.name)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


# ---------------------------------------------------------------------------- the corpus


def test_corpus_covers_at_least_thirty_hostile_inputs() -> None:
    """The issue asks for 30+ cases, each with a specific expected outcome."""
    assert len(CASES) >= 30
    for case in CASES:
        exp = case.expected
        specific = exp.stderr_has or exp.stderr_any or exp.input_rows is not None
        assert specific, f"{case.name} has no specific expected outcome"


@pytest.mark.parametrize("case", list(cases_with(REJECTED)))
def test_file_that_cannot_be_a_table_is_rejected_with_one_line_reason_and_no_outputs(
    case: Case, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Empty, binary, broken or headerless files fail the run as a whole: one readable
    line on stderr, exit 1, nothing (not even a temporary file) left in the output dir,
    and the original untouched (it goes to quarantine as it came)."""
    path = build_case(case, tmp_path / "in")
    before = digest(path)
    run = run_in_process(process_argv(path, case.contract, out_dir), capsys)
    assert_no_traceback(run)
    assert_one_line_reason(run, case, path)
    assert sorted(tree(out_dir)) == [], "a rejected file leaves no outputs"
    assert digest(path) == before, "the input is never modified"


@pytest.mark.parametrize("case", list(cases_with(PROCESSED)))
def test_processed_file_accounts_for_every_row_with_documented_outcomes(
    case: Case, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is a table exits 0 and every input row is exported, quarantined with
    its reason and physical line, or counted as a duplicate; values come out as promised."""
    path = build_case(case, tmp_path / "in")
    before = digest(path)
    run = run_in_process(process_argv(path, case.contract, out_dir), capsys)
    assert_no_traceback(run)
    assert_processed(case, run, path, out_dir)
    assert digest(path) == before, "the input is never modified"


@pytest.mark.parametrize("case", list(cases_with(USAGE)))
def test_usage_error_exits_2_with_one_line_reason(
    case: Case, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong path or contract name is the caller's mistake: exit 2, one line naming it."""
    path = build_case(case, tmp_path / "in")
    run = run_in_process(process_argv(path, case.contract, out_dir), capsys)
    assert_no_traceback(run)
    assert_one_line_reason(run, case, path)
    assert sorted(tree(out_dir)) == []


@dataclass(frozen=True)
class RealRun:
    """One run of the real command, with the paths it was given."""

    run: Run
    path: Path
    out_dir: Path
    tree_before: set[str]


SUBPROCESS_CASES = [c for c in CASES if c.via_subprocess]


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RealRun]:
    """Start every real-command run at once and collect them: each start pays the full
    import cost (~1.5 s), so running them side by side keeps the file fast on 2 cores."""
    jobs: dict[str, tuple[list[str], Path, Path]] = {}
    for case in SUBPROCESS_CASES:
        base = tmp_path_factory.mktemp(case.name)
        out = base / "out"
        out.mkdir()
        path = build_case(case, base / "in")
        jobs[case.name] = (process_argv(path, case.contract, out), path, out)
    base = tmp_path_factory.mktemp("missing_file")
    jobs["process:missing_file"] = (
        process_argv(base / "nowhere.csv", "vendas", base / "out"), base / "nowhere.csv", base
    )
    base = tmp_path_factory.mktemp("validate_ragged")
    ragged = base / "ragged.csv"
    ragged.write_text(lines(VENDAS_HEADER, vrow(1), vrow(2) + ",extra"), encoding="utf-8")
    jobs["validate:ragged"] = (["validate", str(ragged), "--contract", "vendas"], ragged, base)

    befores = {name: tree(out) for name, (_, _, out) in jobs.items()}
    started = {name: start_subprocess(argv) for name, (argv, _, _) in jobs.items()}
    return {
        name: RealRun(finish_subprocess(started[name]), path, out, befores[name])
        for name, (_, path, out) in jobs.items()
    }


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SUBPROCESS_CASES])
def test_real_command_prints_no_traceback_on_hostile_input(
    case: Case, real_runs: dict[str, RealRun]
) -> None:
    """In-process runs can hide what the shell shows (exceptions escaping `main`, warnings
    at import, exit status); run the real command for a few representative files."""
    real = real_runs[case.name]
    assert_no_traceback(real.run)
    if case.expected.exit_code == PROCESSED:
        assert_processed(case, real.run, real.path, real.out_dir)
    else:
        assert_one_line_reason(real.run, case, real.path)
        assert sorted(tree(real.out_dir)) == []


def test_real_command_reports_a_missing_file_as_a_usage_error(
    real_runs: dict[str, RealRun],
) -> None:
    """The installed command, not only `main`, exits 2 with one line for a bad path."""
    run = real_runs["process:missing_file"].run
    assert_no_traceback(run)
    assert run.rc == USAGE, run.stderr
    assert run.stderr.strip() and "\n" not in run.stderr.strip(), run.stderr
    assert "nowhere.csv" in run.stderr


def test_validate_real_command_on_ragged_file_prints_report_and_exits_1(
    real_runs: dict[str, RealRun],
) -> None:
    """The real `ivi validate` on a ragged file: report JSON on stdout, exit 1, no traceback,
    and nothing written next to the input."""
    real = real_runs["validate:ragged"]
    assert_no_traceback(real.run)
    assert real.run.rc == 1, real.run.stderr
    report = json.loads(real.run.stdout)
    assert (report["exported_rows"], report["quarantined_rows"]) == (1, 1)
    assert tree(real.out_dir) == real.tree_before


# ---------------------------------------------------------------------------- ivi validate


def _validate(
    tmp_path: Path,
    text: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    contract: str = "vendas",
) -> tuple[Run, set[str], set[str]]:
    """Run `ivi validate` from an empty working directory; return the run and the file tree
    before and after (validate must write nothing, anywhere under tmp_path)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "cwd").mkdir()
    path = tmp_path / "in" / "vendas.csv"
    path.write_bytes(text.encode())
    monkeypatch.chdir(tmp_path / "cwd")
    before = tree(tmp_path)
    run = run_in_process(["validate", str(path), "--contract", contract], capsys)
    assert_no_traceback(run)
    return run, before, tree(tmp_path)


def test_validate_exits_0_and_writes_nothing_when_only_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Duplicates are dropped, not errors: a file whose only flaw is a repeated row passes,
    and the report on stdout still counts the duplicate."""
    run, before, after = _validate(
        tmp_path, lines(VENDAS_HEADER, vrow(1), vrow(1), vrow(2)), capsys, monkeypatch
    )
    assert run.rc == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"],
            report["duplicate_rows"]) == (3, 2, 0, 1)
    assert after == before, "validate writes nothing"


def test_validate_exits_1_and_writes_nothing_when_a_row_is_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI check (`ivi validate`) must fail as soon as one row would be quarantined,
    while still printing the full report so the user sees why."""
    run, before, after = _validate(
        tmp_path, lines(VENDAS_HEADER, vrow(1), vrow(2, uf="XX")), capsys, monkeypatch
    )
    assert run.rc == 1, run.stderr
    report = json.loads(run.stdout)
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"],
            report["duplicate_rows"]) == (2, 1, 1, 0)
    assert report["failures"]["uf"]["allowed"] == 1
    assert after == before, "validate writes nothing"


def test_validate_rejects_an_empty_file_with_one_line_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be a table fails validate the same way it fails process."""
    run, before, after = _validate(tmp_path, "", capsys, monkeypatch)
    assert run.rc == 1
    assert run.stderr.strip() and "\n" not in run.stderr.strip(), run.stderr
    assert "empty" in scrub(run.stderr, tmp_path / "in" / "vendas.csv"), run.stderr
    assert after == before, "validate writes nothing"


def test_validate_with_an_unknown_contract_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 (not 1) so scripts can tell 'bad data' from 'bad call'."""
    run, before, after = _validate(
        tmp_path, lines(VENDAS_HEADER, vrow(1)), capsys, monkeypatch, contract="nope_x"
    )
    assert run.rc == 2
    assert run.stderr.strip() and "\n" not in run.stderr.strip(), run.stderr
    assert "nope_x" in run.stderr
    assert after == before


def test_every_contract_column_is_in_the_vendas_header_used_by_the_corpus() -> None:
    """Guard the corpus itself: the 'valid' vendas rows really have the contract's shape."""
    assert VENDAS_HEADER.split(",") == list(VENDAS_COLUMNS)
    assert len(vrow(1).split(",")) == len(VENDAS_COLUMNS)
