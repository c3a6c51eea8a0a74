"""The run's artifacts: keys that never collide, markdown nothing in a file can break, and no
personal data (`pii = true` columns) in them."""

from __future__ import annotations

import csv
import json
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from flows.artifacts import (
    ARTIFACT_SLUG_CHARS,
    artifact_key,
    escape_markdown,
    rejected_sample,
    summary_markdown,
)
from processing.contract import load_contract
from processing.pii import MASK, mask_reason, mask_rejected_row
from objectstore.store import OutputKeys
from ivi.settings import Settings
from processing.run import process_file
from tests.pipeline_support import (
    artifacts_with_key,
    read_object,
    runs_that_processed,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.stack_support import prefect_request

# The Prefect UI renders markdown with raw HTML allowed, tables included (GFM).
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
PREFECT_ARTIFACT_KEY = re.compile(r"^[a-z0-9-]+$")
HOSTILE = ["<script>alert(1)</script>", "a|b", "x\ny", "line\r\nbreak", "*b* _i_ [l](javascript:1)",
           "`code`", "# h", "&lt;script&gt;", "\\|", "| --- |", "<img src=x onerror=alert(1)>"]


class Cells(HTMLParser):
    """Rows of `<td>`/`<th>` text, and every start tag seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered_table(*cells: str) -> Cells:
    header = "| " + " | ".join(f"h{i}" for i in range(len(cells))) + " |"
    rule = "|" + "---|" * len(cells)
    row = "| " + " | ".join(escape_markdown(cell) for cell in cells) + " |"
    parser = Cells()
    parser.feed(MARKDOWN.render("\n".join([header, rule, row, ""])))
    return parser


def flat(text: str) -> str:
    """What a cell can show of `text`: on one line (breaks and controls become spaces)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+", " ", text)


# --- artifact keys -----------------------------------------------------------------------------
def test_keys_differing_only_in_case_or_punctuation_get_different_artifact_keys() -> None:
    keys = ["vendas/a.csv", "vendas/a.CSV", "vendas/a_csv", "vendas/a-csv", "vendas/a.csv "]
    assert len({artifact_key("report", key) for key in keys}) == len(keys)


def test_long_keys_with_a_common_prefix_get_different_artifact_keys() -> None:
    prefix = "vendas/" + "x" * 200
    first, second = artifact_key("report", prefix + "/1.csv"), artifact_key("report", prefix + "/2.csv")
    assert first != second
    assert len(first) <= len("report") + ARTIFACT_SLUG_CHARS + 18


def test_an_artifact_key_is_readable_and_stable() -> None:
    key = artifact_key("report", "vendas/2026/Nov.csv")
    assert key.startswith("report-vendas-2026-nov-csv-")
    assert key == artifact_key("report", "vendas/2026/Nov.csv")
    assert PREFECT_ARTIFACT_KEY.match(artifact_key("rejected", "çãõ/€€€.csv"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=120), min_size=2, max_size=20, unique=True))
def test_distinct_object_keys_always_give_distinct_artifact_keys(keys: list[str]) -> None:
    for kind in ("report", "rejected"):
        made = [artifact_key(kind, key) for key in keys]
        assert len(set(made)) == len(keys)
        assert all(PREFECT_ARTIFACT_KEY.match(made_key) for made_key in made)


# --- markdown escaping -------------------------------------------------------------------------
@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_value_stays_in_its_cell_and_injects_no_html(text: str) -> None:
    table = rendered_table(text, "after")
    assert set(table.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}
    assert table.rows[1] == [flat(text).strip(), "after"]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), st.text(max_size=20))
def test_no_text_breaks_out_of_a_table_cell_or_injects_html(text: str, other: str) -> None:
    table = rendered_table(text, other)
    assert set(table.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}
    assert len(table.rows) == 2 and len(table.rows[1]) == 2
    # the cell shows the text itself, on one line: nothing was taken as markup
    assert [cell.strip() for cell in table.rows[1]] == [flat(text).strip(), flat(other).strip()]
    assert "<" not in escape_markdown(text) and "\n" not in escape_markdown(text)


def test_the_summary_escapes_the_key_and_the_header_names_it_shows() -> None:
    key = "vendas/<script>alert(1)</script>|x\n# owned.csv"
    report: dict[str, object] = {
        "source_key": key, "contract": "vendas", "source_etag": "e|t", "encoding": "utf-8",
        "delimiter": "|", "input_rows": 1, "exported_rows": 0, "quarantined_rows": 1,
        "duplicate_rows": 0, "failures": {"uf": {"allowed": 1}},
        "ignored_columns": ["<img src=x onerror=alert(1)>", "a|b"],
        "outputs": {"rejected": f"s3://quarantine/{key}"},
    }
    parser = Cells()
    parser.feed(MARKDOWN.render(summary_markdown(report)))
    assert not {"script", "img"} & set(parser.tags)
    assert parser.tags.count("h1") == 1  # the `# owned` after the newline is no heading
    assert all(len(row) == len(parser.rows[0]) for row in parser.rows[:2])


# --- personal data -----------------------------------------------------------------------------
def test_contracts_mark_the_personal_columns() -> None:
    assert {"idade", "genero", "renda_mensal", "estado_civil"} <= load_contract("clientes").pii_columns
    assert "churn" not in load_contract("clientes").pii_columns


def test_a_quoted_pii_value_in_a_reason_is_masked_and_others_are_kept() -> None:
    reason = "idade: above the maximum 120 ('131'); nps: above the maximum 10 ('11')"
    assert mask_reason(reason, ["131"]) == (
        f"idade: above the maximum 120 ('{MASK}'); nps: above the maximum 10 ('11')"
    )


def test_a_rejected_row_loses_its_pii_values_its_quotes_and_its_raw_text() -> None:
    row = {"_line": "3", "_errors": "genero: not a known gender ('Z; x')", "genero": "Z; x",
           "nps": "7", "_raw": ""}
    assert mask_rejected_row(row, {"genero"}) == {
        "_line": "3", "_errors": f"genero: not a known gender ('{MASK}')", "genero": MASK,
        "nps": "7", "_raw": "",
    }
    ragged = {"_line": "4", "_errors": "row: has 12 fields, the header has 11", "genero": "",
              "_raw": "3,40,F,Solteiro"}
    assert mask_rejected_row(ragged, {"genero"})["_raw"] == MASK
    assert mask_rejected_row(ragged, ())["_raw"] == "3,40,F,Solteiro"


CLIENTES_HEADER = ("id_cliente,idade,genero,estado_civil,renda_mensal,tempo_como_cliente,"
                   "numero_compras_mensal,valor_medio_compra,suporte_acionado,nps,churn")
PERSONAL_VALUES = ["9131", "Zorro", "Enrolado", "-77.25", "880077", "Solteirissimo"]


def clientes_with_bad_rows(path: Path) -> Path:
    path.write_text(
        "\n".join([
            CLIENTES_HEADER,
            "1,34,M,Casado,5200.50,12,3,150.0,0,9,0",
            "880077,9131,Zorro,Enrolado,-77.25,5,1,80.0,1,7,1",  # four pii failures
            "3,40,F,Solteirissimo,1000,1,1,1,1,1,1,EXTRA",  # wrong number of fields
            "4,41,F,Casado,1000,1,1,1,1,11,1",  # nps (not pii) fails: its value is shown
        ]) + "\n",
        encoding="utf-8",
    )
    return path


def test_the_rejected_sample_shows_no_pii_value_but_the_quarantine_file_keeps_them(
    tmp_path: Path,
) -> None:
    contract = load_contract("clientes")
    report = process_file(clientes_with_bad_rows(tmp_path / "c.csv"), contract, tmp_path / "out")
    rejected = Path(report.outputs["rejected"])
    kept = rejected.read_text(encoding="utf-8")
    assert all(value in kept for value in PERSONAL_VALUES)
    sample = rejected_sample(rejected, pii_columns=contract.pii_columns)
    assert len(sample) == 3
    shown = repr(sample)
    for value in PERSONAL_VALUES:
        assert value not in shown and escape_markdown(value) not in shown, value
    assert "\\('11'\\)" in sample[2]["_errors"]  # a value of another column is still quoted
    # and the report holds no value at all
    assert not any(value in repr(report.to_dict()) for value in PERSONAL_VALUES)


def test_quarantine_csv_written_by_the_engine_is_what_the_sample_reads(tmp_path: Path) -> None:
    report = process_file(clientes_with_bad_rows(tmp_path / "c.csv"), load_contract("clientes"),
                          tmp_path / "out")
    with Path(report.outputs["rejected"]).open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:2] == ["_line", "_errors"] and header[-1] == "_raw"


# --- the whole pipeline ------------------------------------------------------------------------
@pytest.mark.services
def test_an_uploaded_clientes_file_leaves_no_pii_value_in_artifacts_report_or_logs(
    stack: Settings,
) -> None:
    marker = uuid.uuid4().hex[:8]
    personal = [f"id-{marker}-pessoal", f"idade-{marker}-x", f"Zorro{marker}",
                f"Enrolado{marker}", f"renda-{marker}-y"]
    key = f"clientes/pii/{marker}.csv"
    data = "\n".join([
        CLIENTES_HEADER,
        "1,34,M,Casado,5200.50,12,3,150.0,0,9,0",
        ",".join([*personal, "5", "1", "80.0", "1", "7", "1"]),  # every pii column fails
        f"3,40,F,Solteiro{marker},1000,1,1,1,1,1,1,EXTRA",  # ragged: its text is all of it
    ]).encode("utf-8") + b"\n"
    personal.append(f"Solteiro{marker}")
    etag = upload(stack, key, data)
    report = wait_for_report(stack, key, etag)
    assert (report["exported_rows"], report["quarantined_rows"]) == (1, 2)
    [run] = runs_that_processed(wait_for_runs_to_finish(stack, key))  # a reconcile tick may add a no-op run
    quarantined = read_object(stack, stack.quarantine_bucket, OutputKeys.for_key(key).rejected)
    assert all(value.encode() in quarantined for value in personal)
    sample = artifacts_with_key(stack, artifact_key("rejected", key))
    summary = artifacts_with_key(stack, artifact_key("report", key))
    assert sample and summary
    assert MASK in json.dumps(sample[0]["data"]).replace("\\\\", "")
    logs = prefect_request(
        "POST", f"{stack.prefect_api_url}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200},
    ).text
    for where, text in {"artifacts": json.dumps(sample + summary), "report": json.dumps(report),
                        "logs": logs}.items():
        for value in personal:
            assert value not in text and escape_markdown(value) not in text, (where, value)
