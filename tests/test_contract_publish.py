"""Contracts outside the image: `ivi contract publish` puts a contract in the store, and the
running workers use it from their next run, with no restart (flows/contracts.py).

The worked example of docs/contracts.md (a real public dataset, samples/obitos_2020.csv, and
its contract samples/obitos.toml) is checked here too, so that the doc cannot rot.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from ivi.cli import main
from ivi.settings import Settings
from objectstore.contracts import put_published_contract
from processing.contract import ContractError, load_contract
from processing.draft import draft_contract
from processing.run import process_file
from tests.pipeline_support import s3, upload, wait_for_report
from tests.stack_support import free_ports

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "obitos_2020.csv"
CONTRACT = ROOT / "samples" / "obitos.toml"
PREFIX = "_ivi/contracts/"


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# -- the worked example, without services ---------------------------------------------------
def test_the_worked_example_drafts_and_validates_as_the_doc_says(tmp_path: Path) -> None:
    draft = draft_contract(SAMPLE, "obitos")
    assert (draft.columns, draft.rows) == (7, 101)
    draft_file = tmp_path / "obitos.toml"
    draft_file.write_text(draft.toml, encoding="utf-8")
    drafted = load_contract(str(draft_file))
    assert [(c.name, c.type) for c in drafted.columns] == [
        ("city_id", "int"), ("year", "int"), ("month", "int"), ("region", "string"),
        ("state", "string"), ("city", "string"), ("deaths", "int"),
    ]
    assert drafted.column("city_id").unique and drafted.column("region").allowed
    assert main(["validate", str(SAMPLE), "--contract", str(draft_file)]) == 0

    adjusted = load_contract(str(CONTRACT))
    report = process_file(SAMPLE, adjusted, tmp_path / "out")
    assert (report.input_rows, report.exported_rows, report.quarantined_rows) == (101, 101, 0)
    docs = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    assert "ivi contract draft samples/obitos_2020.csv --name obitos" in docs
    assert "7 columns from 101 rows" in docs
    assert f"sha256 {hashlib.sha256(CONTRACT.read_bytes()).hexdigest()[:12]})" in docs  # step 5's output


def test_the_adjusted_contract_refuses_what_the_data_must_not_be(tmp_path: Path) -> None:
    header = "city_id,year,month,region,state,city,deaths"
    rows = [
        "1,2020,1,Sudeste,São Paulo,Santos,10",  # an alias of a region: kept, as Southeast
        "1,2020,2,Southeast,São Paulo,Santos,12",  # the same city next month: not a duplicate id
        "2,2020,13,South,Paraná,Curitiba,5",  # no 13th month
        "3,2020,1,South,Parana,Londrina,-1",  # no negative deaths; Parana is matched ignoring accents
        "4,2020,1,South,Buenos Aires,La Plata,3",  # not a Brazilian state
    ]
    source = tmp_path / "obitos.csv"
    source.write_text("\n".join([header, *rows, ""]), encoding="utf-8")
    report = process_file(source, load_contract(str(CONTRACT)), tmp_path / "out")
    assert (report.exported_rows, report.quarantined_rows) == (2, 3)
    assert report.failures == {"month": {"max": 1}, "deaths": {"min": 1}, "state": {"allowed": 1}}
    clean = (tmp_path / "out" / "obitos.csv").read_text(encoding="utf-8").splitlines()
    assert clean[1].split(",")[3] == "Southeast"


# -- on the running stack ---------------------------------------------------------------------
def _cli_env(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in stack.child_env().items():
        monkeypatch.setenv(name, value)


def _worker_pid(stack: Settings) -> int:
    from ivi import prefect_stack
    from ivi import stack as ivi_stack
    from ivi.processes import running

    process = running(ivi_stack.files(stack, prefect_stack.WORKER))
    assert process is not None, "the stack's worker is not running"
    return process.pid


@pytest.mark.services
def test_a_published_contract_is_used_by_the_running_worker_without_a_restart(
    stack: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _cli_env(stack, monkeypatch)
    worker = _worker_pid(stack)
    data = SAMPLE.read_bytes()

    # Before it is published, the folder names no contract: rejected, saying how to fix it.
    etag = upload(stack, "obitos/2020/before.csv", data)
    before = wait_for_report(stack, "obitos/2020/before.csv", etag)
    assert before["status"] == "rejected"
    assert "unknown contract 'obitos'" in before["reason"]
    assert f"s3://{stack.processed_bucket}/{PREFIX}" in before["reason"]
    assert "vendas" in before["reason"] and "ivi contract publish" in before["reason"]

    assert main(["contract", "publish", str(CONTRACT)]) == 0
    printed = capsys.readouterr().out
    assert "saved block powerbi-obitos (local stand-in dataset ivi-obitos" in printed
    assert "rate limit powerbi-obitos: created" in printed
    assert f"to s3://{stack.processed_bucket}/{PREFIX}obitos.toml" in printed

    etag = upload(stack, "obitos/2020/jan-may.csv", data)
    report = wait_for_report(stack, "obitos/2020/jan-may.csv", etag)
    assert report["status"] == "processed", report
    assert (report["input_rows"], report["exported_rows"], report["quarantined_rows"]) == (101, 101, 0)
    assert report["contract_source"] == f"s3://{stack.processed_bucket}/{PREFIX}obitos.toml"
    assert report["contract_sha256"] == hashlib.sha256(CONTRACT.read_bytes()).hexdigest()
    assert report["powerbi_rows"] == 101 and "powerbi_skipped" not in report

    # A changed contract is used by the next run: at most 100 deaths a month now.
    stricter = tmp_path / "obitos.toml"
    stricter.write_text(_with_deaths_max(CONTRACT.read_text(encoding="utf-8"), 100), encoding="utf-8")
    assert main(["contract", "publish", str(stricter)]) == 0
    assert "rate limit powerbi-obitos: unchanged" in capsys.readouterr().out
    etag = upload(stack, "obitos/2020/jan-may-again.csv", data)
    changed = wait_for_report(stack, "obitos/2020/jan-may-again.csv", etag)
    over = sum(int(row["deaths"]) > 100 for row in sample_rows())
    assert over > 0
    assert (changed["exported_rows"], changed["quarantined_rows"]) == (101 - over, over)
    assert changed["failures"] == {"deaths": {"max": over}}
    assert changed["contract_sha256"] == hashlib.sha256(stricter.read_bytes()).hexdigest()
    # The file processed before keeps its report: nothing is reprocessed on its own.
    assert wait_for_report(stack, "obitos/2020/jan-may.csv")["quarantined_rows"] == 0

    assert _worker_pid(stack) == worker


def _renamed(name: str) -> str:
    """The worked example's contract under another name (another dataset)."""
    return CONTRACT.read_text(encoding="utf-8").replace('name = "obitos"', f'name = "{name}"', 1)


def _renamed_file(directory: Path, name: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(_renamed(name), encoding="utf-8")
    return path


def _with_deaths_max(text: str, limit: int) -> str:
    """The contract with `max = limit` on its `deaths` column (its last)."""
    head, deaths = text.split('name = "deaths"', 1)
    return f'{head}name = "deaths"{deaths.rstrip()}\nmax = {limit}\n'


@pytest.mark.services
def test_a_bad_contract_is_refused_in_one_line_and_the_published_one_stays(
    stack: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _cli_env(stack, monkeypatch)
    bad = tmp_path / "obitos.toml"
    bad.write_text(
        CONTRACT.read_text(encoding="utf-8").replace('type = "int"', 'type = "integer"', 1),
        encoding="utf-8",
    )
    before = _published(stack, "obitos")
    assert main(["contract", "publish", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ivi contract publish: obitos.toml: column 'city_id' has type 'integer'")
    assert _published(stack, "obitos") == before

    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n[[columns]\n', encoding="utf-8")
    assert main(["contract", "publish", str(broken)]) == 1
    assert capsys.readouterr().err.startswith("ivi contract publish: broken.toml: ")
    assert main(["contract", "publish", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err

    # No destination for its Power BI table (here: no stand-in where the settings say):
    # refused before anything is uploaded.
    monkeypatch.setenv("IVI_POWERBI_PORT", str(free_ports(1)[0]))
    elsewhere = _renamed_file(tmp_path, "nowhere")
    assert main(["contract", "publish", str(elsewhere)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ivi contract publish: no Power BI destination for `nowhere` (")
    assert "IVI_POWERBI_NOWHERE_PUSH_URL" in err and "nothing was published" in err
    assert err.count("\n") == 1 and _published(stack, "nowhere") is None

    named = tmp_path / "named.toml"
    named.write_text('name = "Óbitos 2020"\n[[columns]]\nname = "a"\ntype = "int"\n', encoding="utf-8")
    assert main(["contract", "publish", str(named)]) == 1
    assert "is not a folder name of the raw bucket" in capsys.readouterr().err


def _published(stack: Settings, name: str) -> bytes | None:
    try:
        response = s3(stack).get_object(stack.processed_bucket, f"{PREFIX}{name}.toml")
    except Exception:  # noqa: BLE001 - none published yet
        return None
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


@pytest.mark.services
def test_a_contract_put_in_the_store_by_hand_is_processed_and_says_why_nothing_was_pushed(
    stack: Settings,
) -> None:
    """No `ivi contract publish`, so no Power BI block: the run stores the rows and its report
    says what creates the block, rather than failing."""
    text = _renamed("obitos_manual")
    put_published_contract(s3(stack), stack.processed_bucket, PREFIX, "obitos_manual", text.encode())
    etag = upload(stack, "obitos_manual/2020.csv", SAMPLE.read_bytes())
    report = wait_for_report(stack, "obitos_manual/2020.csv", etag)
    assert report["status"] == "processed" and report["exported_rows"] == 101
    assert re.fullmatch(
        r"no Power BI block `powerbi-obitos-manual` \(`ivi contract publish` or the setup step creates it\)",
        str(report["powerbi_skipped"]),
    ), json.dumps(report)
    assert report["powerbi_rows"] == 0


@pytest.mark.services
def test_the_store_wins_over_the_image_and_a_withdrawn_publication_falls_back_to_it(
    stack: Settings, tmp_path: Path
) -> None:
    from blocks.pipeline import PipelineBuckets
    from flows.contracts import resolve_contract

    prefix = "_ivi/test-contracts/"  # not the pipeline's: the other tests' runs never see it
    client = s3(stack)
    text = _renamed_file(tmp_path, "both").read_text(encoding="utf-8")
    buckets = PipelineBuckets(
        processed_bucket=stack.processed_bucket, contracts_prefix=prefix, contracts_dir=str(tmp_path)
    )

    image = resolve_contract(client, buckets, "both")
    assert image.source == str(tmp_path / "both.toml")
    assert image.contract.column("deaths").max is None

    stricter = _with_deaths_max(text, 100)
    put_published_contract(client, stack.processed_bucket, prefix, "both", stricter.encode())
    published = resolve_contract(client, buckets, "both")
    assert published.source == f"s3://{stack.processed_bucket}/{prefix}both.toml"
    assert published.contract.column("deaths").max == 100
    assert published.sha256 == hashlib.sha256(stricter.encode()).hexdigest() != image.sha256

    image_only = resolve_contract(client, buckets.model_copy(update={"contracts_prefix": ""}), "both")
    assert image_only.source == image.source

    client.remove_object(stack.processed_bucket, f"{prefix}both.toml")
    assert resolve_contract(client, buckets, "both").source == image.source

    put_published_contract(client, stack.processed_bucket, prefix, "only_published", stricter.encode())
    with pytest.raises(ContractError) as unknown:
        resolve_contract(client, buckets, "nada")
    assert str(unknown.value) == (
        f"unknown contract 'nada': not in s3://{stack.processed_bucket}/{prefix} nor {tmp_path} "
        "(known: both, only_published; publish one with `ivi contract publish`)"
    )
    with pytest.raises(ContractError, match="a contract name is a-z, 0-9 and _"):
        resolve_contract(client, buckets, "Nada Mais")


def test_the_contracts_prefix_must_be_pipeline_state() -> None:
    from pydantic import ValidationError

    from blocks.settings import SetupSettings

    assert SetupSettings(_env_file=None).contracts_prefix == "_ivi/contracts/"  # type: ignore[call-arg]
    for bad in ("contracts/", "_ivi/contracts"):
        with pytest.raises(ValidationError, match="must start with `_` and end with `/`"):
            SetupSettings(_env_file=None, contracts_prefix=bad)  # type: ignore[call-arg]


@pytest.mark.services
def test_a_broken_contract_put_in_the_store_by_hand_rejects_the_file_saying_so(stack: Settings) -> None:
    broken = b'name = "broken_by_hand"\n[[columns]]\nname = "a"\ntype = "number"\n'
    put_published_contract(s3(stack), stack.processed_bucket, PREFIX, "broken_by_hand", broken)
    etag = upload(stack, "broken_by_hand/1.csv", b"a\n1\n")
    report = wait_for_report(stack, "broken_by_hand/1.csv", etag)
    assert report["status"] == "rejected"
    assert report["reason"] == (
        f"the contract for `broken_by_hand/1.csv` is not valid: s3://{stack.processed_bucket}/"
        f"{PREFIX}broken_by_hand.toml: column 'a' has type 'number'; expected one of "
        "['boolean', 'date', 'datetime', 'decimal', 'int', 'string']; fix it and publish it "
        "with `ivi contract publish`"
    )


@pytest.mark.services
def test_a_contract_whose_rate_limit_is_gone_is_stored_and_says_why_nothing_was_pushed(
    stack: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _cli_env(stack, monkeypatch)
    contract = _renamed_file(tmp_path, "obitos_nolimit")
    assert main(["contract", "publish", str(contract)]) == 0
    assert "rate limit powerbi-obitos-nolimit: created" in capsys.readouterr().out
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}), get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name("powerbi-obitos-nolimit")

    etag = upload(stack, "obitos_nolimit/2020.csv", SAMPLE.read_bytes())
    report = wait_for_report(stack, "obitos_nolimit/2020.csv", etag)
    assert report["status"] == "processed" and report["exported_rows"] == 101
    assert report["powerbi_skipped"] == (
        "no rate limit `powerbi-obitos-nolimit` on the Prefect server "
        "(`ivi contract publish` or the setup step creates it)"
    )
