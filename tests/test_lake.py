"""The Delta Lake export (issue 15) on the session's real store: exactly once, replaced
versions, schema evolution, concurrent and killed writers.

The pipeline tests upload through the store's webhook and read the `vendas` table with
delta-rs, as a BI reader would; other tests of the session write to the same table, so each
looks only at its own key's rows and commits. The core tests write tables of their own
(`s3://lake/_test-...`) from separate processes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ivi.cli import main
from ivi.settings import Settings
from lake.maintenance import maintain
from lake.schema import LakeColumn, LakeSchemaError
from lake.storage import table_uri
from lake.table import LakeTarget, SourceVersion, holds_version, replace_source
from tests.fault_support import create_run, poll, upload_trigger_disabled, wait_for_final_state
from tests.lake_support import (
    commits_of_key,
    etags_of_key,
    lake_table,
    rows_of_key,
    start_writer,
    storage_options,
)
from tests.pipeline_support import minio_event, s3, upload, wait_for_report
from tests.powerbi_pipeline_support import new_marker, vendas_csv
from tests.stack_support import auth_headers

pytestmark = pytest.mark.services

PROCESS_OBJECT = "process_object/process-object"


def _ids(rows: list[dict[str, object]]) -> list[int]:
    return sorted(int(row["id_venda"]) for row in rows)  # type: ignore[call-overload]


def test_an_upload_lands_once_and_reruns_and_duplicate_deliveries_change_nothing(stack: Settings) -> None:
    marker = new_marker()
    key = f"vendas/lake/{marker}.csv"
    data = vendas_csv(1_500, marker)
    etag = upload(stack, key, data)
    report = wait_for_report(stack, key, etag)
    assert report["lake_table"] == f"s3://{stack.lake_bucket}/vendas"
    assert report["lake_rows"] == report["exported_rows"] == 1_500
    table = lake_table(stack, "vendas")
    rows = rows_of_key(table, key)
    assert _ids(rows) == list(range(1, 1_501))
    assert {row["_source_etag"] for row in rows} == {etag}
    [commit] = commits_of_key(table, key)
    assert commit["version"] == report["lake_version"]

    forced = create_run(stack, PROCESS_OBJECT, {"bucket": stack.raw_bucket, "key": key, "force": True})
    assert wait_for_final_state(stack, forced, timeout=180)["state_type"] == "COMPLETED"
    rerun_report = wait_for_report(stack, key, etag)
    assert rerun_report["flow_run_id"] == forced
    assert rerun_report["lake_rows"] == 0 and "already" in rerun_report["lake_skipped"]

    body = minio_event(stack, quote_plus(key, safe="/"), etag, len(data))
    for _ in range(3):  # the store's event delivered three times more
        answer = httpx.post(f"{stack.relay_url}/minio/events", headers=auth_headers(stack), json=body, timeout=10)
        assert answer.status_code == 200, answer.text
    duplicates = [create_run(stack, PROCESS_OBJECT, {"bucket": stack.raw_bucket, "key": key, "etag": etag})
                  for _ in range(3)]  # and as runs of the same version at once
    for run in duplicates:
        assert wait_for_final_state(stack, run, timeout=180)["state_type"] == "COMPLETED"

    table = lake_table(stack, "vendas")
    assert len(commits_of_key(table, key)) == 1, "a rerun or a duplicate delivery committed again"
    assert _ids(rows_of_key(table, key)) == list(range(1, 1_501))


def test_a_new_upload_of_a_key_replaces_its_rows_in_one_commit(stack: Settings) -> None:
    marker = new_marker()
    key = f"vendas/lake/{marker}.csv"
    first = upload(stack, key, vendas_csv(800, marker))
    before = wait_for_report(stack, key, first)
    second = upload(stack, key, vendas_csv(300, marker, first_id=5_001))
    after = wait_for_report(stack, key, second)
    assert after["lake_rows"] == 300 and after["lake_version"] > before["lake_version"]

    table = lake_table(stack, "vendas")
    assert _ids(rows_of_key(table, key)) == list(range(5_001, 5_301))
    assert set(etags_of_key(table, key)) == {second}
    newest, oldest = commits_of_key(table, key)
    assert newest["version"] == after["lake_version"]
    metrics = newest["operationMetrics"]
    assert metrics["num_removed_files"] >= 1 and metrics["num_added_rows"] == 300  # one commit did both
    # any version a reader may load holds one version of the key whole, never a mix
    just_before = lake_table(stack, "vendas", after["lake_version"] - 1)
    assert set(etags_of_key(just_before, key)) == {first} and len(etags_of_key(just_before, key)) == 800
    assert oldest["version"] == before["lake_version"]


def test_ivi_lake_show_prints_version_rows_columns_and_commits(
    stack: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = new_marker()
    key = f"vendas/lake/{marker}.csv"
    etag = upload(stack, key, vendas_csv(40, marker))
    wait_for_report(stack, key, etag)
    monkeypatch.setattr("ivi.settings.load_settings", lambda: stack)
    assert main(["lake", "show", "vendas", "--json", "--commits", "50"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["table"] == f"s3://{stack.lake_bucket}/vendas"
    assert shown["rows"] == lake_table(stack, "vendas", shown["version"]).count()
    assert shown["columns"]["data_venda"] == "date32[day]" and shown["columns"]["_source_etag"] == "string"
    assert any(commit["source_key"] == key and commit["rows_added"] == 40 for commit in shown["commits"])

    assert main(["lake", "show", "vendas"]) == 0
    text = capsys.readouterr().out
    assert f"version  {shown['version']}" in text or "version" in text.splitlines()[1]
    assert "preco_unitario  double" in text

    assert main(["lake", "show", "no-such-contract"]) == 2
    assert "'no-such-contract' is not a contract name" in capsys.readouterr().err
    assert main(["lake", "show", "never_processed"]) == 1
    assert "no Delta table at s3://lake/never_processed yet" in capsys.readouterr().err
    empty = stack.model_copy(update={"lake_bucket": stack.quarantine_bucket})
    monkeypatch.setattr("ivi.settings.load_settings", lambda: empty)
    assert main(["lake", "show", "clientes"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"no Delta table at s3://{stack.quarantine_bucket}/clientes" in error


# --- the core, on the real store ----------------------------------------------------------
def _test_table(settings: Settings) -> str:
    return table_uri(settings.lake_bucket, f"_test-{secrets.token_hex(4)}")


def _target(settings: Settings, uri: str, columns: list[LakeColumn]) -> LakeTarget:
    return LakeTarget(uri, uri.rsplit("/", 1)[-1], columns, storage_options(settings))


def _objects(settings: Settings, uri: str, suffix: str) -> set[str]:
    prefix = uri.removeprefix(f"s3://{settings.lake_bucket}/") + "/"
    return {o.object_name for o in s3(settings).list_objects(settings.lake_bucket, prefix, recursive=True)
            if o.object_name.endswith(suffix)}


def test_commits_from_two_processes_to_one_table_all_land(stack: Settings) -> None:
    uri = _test_table(stack)
    writers = [start_writer(stack, uri, f"k{i}", "e1", 2_000) for i in range(6)]
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
        results.append(json.loads(out))
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    versions = sorted(result["version"] for result in results)
    assert len(set(versions)) == 6, f"two writers reported one version: {versions}"  # none overwrote another
    assert table.version() == versions[-1]
    for i in range(6):
        assert len(rows_of_key(table, f"k{i}")) == 2_000


def test_a_writer_killed_before_its_commit_leaves_no_row_and_the_next_commits_one_copy(stack: Settings) -> None:
    uri = _test_table(stack)
    killed = start_writer(stack, uri, "key", "e1", 200_000, chunk=50_000, file_size=100_000, kill=True)
    _out, err = killed.communicate(timeout=180)
    assert killed.returncode == -9, err
    orphans = _objects(stack, uri, ".parquet")
    assert orphans, "the killed writer had written data files"
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert rows_of_key(table, "key") == [] and commits_of_key(table, "key") == []

    again = start_writer(stack, uri, "key", "e1", 200_000, chunk=50_000)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    assert json.loads(out)["rows"] == 200_000
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert sorted(row["id"] for row in rows_of_key(table, "key")) == list(range(200_000))
    assert len(commits_of_key(table, "key")) == 1
    # the orphans are no part of the table; vacuum (no retention here) deletes them
    assert not {f"s3://{stack.lake_bucket}/{name}" for name in orphans} & set(table.file_uris())
    maintain(uri, storage_options(stack), retention_hours=0)
    assert not orphans & _objects(stack, uri, ".parquet")
    after_vacuum = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert sorted(row["id"] for row in rows_of_key(after_vacuum, "key")) == list(range(200_000))


def test_a_contract_that_adds_a_column_evolves_the_table_and_an_incompatible_one_is_refused(stack: Settings) -> None:
    uri = _test_table(stack)
    base = [LakeColumn("id", "int"), LakeColumn("quando", "datetime", utc=True)]
    chunk = pa.table({"id": pa.array([1, 2], pa.int64()),
                      "quando": pa.array([0, 1], pa.timestamp("us", tz="UTC"))})
    first = replace_source(_target(stack, uri, base), [chunk], SourceVersion("a", "e1"))
    grown = base + [LakeColumn("canal", "string")]
    second = replace_source(_target(stack, uri, grown), [chunk.append_column("canal", pa.array(["web", None]))],
                            SourceVersion("b", "e1"))
    # the new column is a commit of its own (an append of files cannot change the schema),
    # then the rows: a reader in between sees the column, null in the earlier rows only
    assert second.version == first.version + 2
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    added, rows = sorted((c for c in table.history() if c["version"] > first.version), key=lambda c: c["version"])
    assert added["operation"] == "ADD COLUMN" and "canal" in added["operationParameters"]["fields"]
    assert rows["version"] == second.version and rows["operationMetrics"]["num_added_rows"] == 2
    assert rows_of_key(lake_table(stack, uri.rsplit("/", 1)[-1], added["version"]), "b") == []
    assert table.schema().to_arrow().names[-1] == "canal"  # type: ignore[attr-defined]
    assert [row["canal"] for row in rows_of_key(table, "a")] == [None, None]
    assert [row["canal"] for row in rows_of_key(table, "b")] == ["web", None]

    narrowed = [LakeColumn("id", "int"), LakeColumn("quando", "date"), LakeColumn("canal", "string")]
    with pytest.raises(LakeSchemaError, match="column `quando` is timestamp"):
        replace_source(_target(stack, uri, narrowed), [chunk], SourceVersion("c", "e1"))
    renamed = [LakeColumn("id", "int"), LakeColumn("quando", "datetime", utc=True), LakeColumn("channel", "string")]
    with pytest.raises(LakeSchemaError, match="column `canal` .* no longer in the contract"):
        replace_source(_target(stack, uri, renamed), [chunk], SourceVersion("c", "e1"))
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert table.version() == second.version and rows_of_key(table, "c") == []  # nothing written


def test_an_export_refused_for_its_schema_fails_the_run_naming_the_column(stack: Settings, tmp_path: Path) -> None:
    """The whole flow: a contract whose column changed type fails the run, naming it, and
    writes nothing to the table."""
    marker = new_marker()
    seed_key = f"vendas/lake/{marker}.csv"
    wait_for_report(stack, seed_key, upload(stack, seed_key, vendas_csv(5, marker)))  # the table exists
    text = (Path(__file__).resolve().parents[1] / "contracts" / "vendas.toml").read_text(encoding="utf-8")
    changed = text.replace('name = "data_venda"\ntype = "date"', 'name = "data_venda"\ntype = "string"')
    assert changed != text
    contract = tmp_path / "vendas.toml"
    contract.write_text(changed, encoding="utf-8")
    key = f"lake-refused/{marker}.csv"
    with upload_trigger_disabled(stack):
        upload(stack, key, vendas_csv(20, marker))
    version_before = lake_table(stack, "vendas").version()
    run = create_run(stack, PROCESS_OBJECT, {"bucket": stack.raw_bucket, "key": key, "contract": str(contract)})
    final = wait_for_final_state(stack, run, timeout=180)
    assert final["state_type"] == "FAILED"
    assert "column `data_venda` is date32[day]" in final["state"]["message"], final["state"]["message"]
    table = lake_table(stack, "vendas")
    assert rows_of_key(table, key) == [] and commits_of_key(table, key) == []
    assert table.version() >= version_before


def test_the_nightly_maintenance_compacts_each_table_of_the_lake(stack: Settings) -> None:
    """The `maintain-lake` deployment, run now: one OPTIMIZE commit per table, same rows.
    (The week's retention stays: this session's other writers are not disturbed.)"""
    marker = new_marker()
    for part in range(3):  # at least three small files in the vendas table
        key = f"vendas/lake/{marker}-{part}.csv"
        wait_for_report(stack, key, upload(stack, key, vendas_csv(10, marker, first_id=100 * part + 1)))
    before = lake_table(stack, "vendas")
    mine = sorted(_ids(rows_of_key(before, f"vendas/lake/{marker}-{part}.csv")) for part in range(3))
    run = create_run(stack, "maintain_lake/maintain-lake", {"retention_hours": 168})
    assert wait_for_final_state(stack, run, timeout=300)["state_type"] == "COMPLETED"
    after = lake_table(stack, "vendas")
    optimized = [c for c in after.history() if c["operation"] == "OPTIMIZE" and c["version"] > before.version()]
    assert optimized, "no compaction commit"
    assert len(after.file_uris()) < len(before.file_uris())
    assert sorted(_ids(rows_of_key(after, f"vendas/lake/{marker}-{part}.csv")) for part in range(3)) == mine


# --- replacing a key's rows: shared files, races, statistics --------------------------------
def _core_rows(settings: Settings, uri: str, key: str) -> list[tuple[int, str]]:
    return sorted((row["id"], row["_source_etag"])
                  for row in rows_of_key(lake_table(settings, uri.rsplit("/", 1)[-1]), key, ["id", "_source_etag"]))


def _write(settings: Settings, uri: str, key: str, etag: str, ids: range) -> int:
    chunk = pa.table({"id": pa.array(list(ids), pa.int64()), "nome": [f"n{i}" for i in ids]})
    columns = [LakeColumn("id", "int"), LakeColumn("nome", "string")]
    return replace_source(_target(settings, uri, columns), [chunk], SourceVersion(key, etag)).version


def _finished(writer: subprocess.Popen[str]) -> dict[str, object]:
    out, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, err
    return dict(json.loads(out))


def test_replacing_a_key_whose_rows_share_a_compacted_file_keeps_the_other_keys_rows(stack: Settings) -> None:
    uri = _test_table(stack)
    for index, key in enumerate(("k0", "k1", "k2")):
        _write(stack, uri, key, "e1", range(1_000 * index, 1_000 * index + 300 + index))
    lake_table(stack, uri.rsplit("/", 1)[-1]).optimize.compact()
    compacted = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert len(compacted.file_uris()) == 1  # one file holds the three keys' rows

    version = _write(stack, uri, "k1", "e2", range(5_000, 5_050))
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert _core_rows(stack, uri, "k1") == [(i, "e2") for i in range(5_000, 5_050)]
    assert _core_rows(stack, uri, "k0") == [(i, "e1") for i in range(0, 300)]
    assert _core_rows(stack, uri, "k2") == [(i, "e1") for i in range(2_000, 2_302)]
    assert table.count() == 300 + 50 + 302
    assert not set(compacted.file_uris()) & set(table.file_uris())  # the shared file was replaced
    [commit] = [c for c in table.history() if c["version"] == version]
    assert commit["operationMetrics"]["num_removed_files"] == 1
    assert commit["operationMetrics"]["num_copied_rows"] == 300 + 302  # the other keys' rows, once


def test_two_writers_of_a_new_key_leave_one_version_the_current_one(stack: Settings, tmp_path: Path) -> None:
    """The older version's writer planned its commit (the key was new: nothing to remove), the
    newer one committed, then the older one commits: it lost its table version, plans again,
    and finds its version superseded. Rebased by delta-rs instead, its rows would have joined
    the newer ones."""
    uri = _test_table(stack)
    current = tmp_path / "current"
    current.write_text("e1")
    older = start_writer(stack, uri, "new-key", "e1", 3_000, current=str(current),
                         pause=str(tmp_path / "older-planned"), go=str(tmp_path / "go"))
    poll(lambda: (tmp_path / "older-planned").exists() or older.poll() is not None, "the older writer's plan", 120)
    assert older.poll() is None, older.communicate()
    current.write_text("e2")  # a newer upload of the key
    newer = _finished(start_writer(stack, uri, "new-key", "e2", 2_000, first_id=10_000, current=str(current)))
    (tmp_path / "go").touch()
    late = _finished(older)
    assert late["rows"] == 0 and "no longer the object's current version" in str(late["skipped"])
    assert _core_rows(stack, uri, "new-key") == [(i, "e2") for i in range(10_000, 12_000)]
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert [commit["version"] for commit in commits_of_key(table, "new-key")] == [newer["version"]]


def test_a_compaction_between_planning_and_committing_is_seen_and_no_row_is_doubled(
    stack: Settings, tmp_path: Path
) -> None:
    uri = _test_table(stack)
    _write(stack, uri, "other", "e1", range(0, 400))
    _write(stack, uri, "mine", "e1", range(1_000, 1_500))
    writer = start_writer(stack, uri, "mine", "e2", 700, first_id=20_000,
                          pause=str(tmp_path / "planned"), go=str(tmp_path / "go"))
    poll(lambda: (tmp_path / "planned").exists() or writer.poll() is not None, "the writer's plan", 120)
    # the files it planned to remove are compacted away (with `other`'s rows) before its commit
    compacted = lake_table(stack, uri.rsplit("/", 1)[-1]).optimize.compact()
    assert compacted["numFilesRemoved"] == 2
    (tmp_path / "go").touch()
    assert _finished(writer)["rows"] == 700
    assert _core_rows(stack, uri, "mine") == [(i, "e2") for i in range(20_000, 20_700)]
    assert _core_rows(stack, uri, "other") == [(i, "e1") for i in range(0, 400)]
    assert lake_table(stack, uri.rsplit("/", 1)[-1]).count() == 1_100


def test_each_data_file_has_delta_statistics_and_a_key_lookup_reads_only_its_files(stack: Settings) -> None:
    uri = _test_table(stack)
    columns = [LakeColumn("id", "int"), LakeColumn("dia", "date"), LakeColumn("quando", "datetime", utc=True),
               LakeColumn("valor", "decimal"), LakeColumn("nome", "string")]
    target = _target(stack, uri, columns)
    for key, etag in (("a.csv", "ea"), ("b.csv", "eb"), ("c.csv", "ec")):
        chunk = pa.table({
            "id": pa.array([1, 2, None], pa.int64()),
            "dia": pa.array([date(2024, 1, 5), None, date(2023, 12, 31)]),
            "quando": pa.array([datetime(2024, 1, 5, 13, 0, 0, 123_456, tzinfo=UTC), None, None]),
            "valor": [1.5, -2.0, None], "nome": ["Ana", None, "Zé"],
        })
        replace_source(target, [chunk], SourceVersion(key, etag))
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    files = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    assert len(files) == 3
    [stats] = [f for f in files if f["min._source_key"] == "b.csv"]
    assert stats["num_records"] == 3 and stats["max._source_key"] == "b.csv"
    assert (stats["min._source_etag"], stats["max._source_etag"]) == ("eb", "eb")
    assert (stats["min.id"], stats["max.id"], stats["null_count.id"]) == (1, 2, 1)
    assert (stats["min.dia"], stats["max.dia"]) == (date(2023, 12, 31), date(2024, 1, 5))
    # to the millisecond, the maximum rounded up: a reader's comparison never skips the value
    assert stats["min.quando"] == datetime(2024, 1, 5, 13, 0, 0, 123_000, tzinfo=UTC)
    assert stats["max.quando"] == datetime(2024, 1, 5, 13, 0, 0, 124_000, tzinfo=UTC)
    assert (stats["min.valor"], stats["max.valor"], stats["min.nome"], stats["max.nome"]) == (-2.0, 1.5, "Ana", "Zé")
    # the version lookup keeps only the fragment whose statistics may hold it: it opens one file
    lookup = (pc.field("_source_key") == "b.csv") & (pc.field("_source_etag") == "eb")
    [fragment] = list(table.to_pyarrow_dataset().get_fragments(filter=lookup))
    assert fragment.path.endswith(stats["path"])
    assert holds_version(table, SourceVersion("b.csv", "eb")) and not holds_version(table, SourceVersion("b.csv", "ea"))


def test_a_writer_killed_before_replacing_a_key_leaves_its_rows_as_they_were(stack: Settings) -> None:
    uri = _test_table(stack)
    version = _write(stack, uri, "key", "e1", range(0, 600))
    killed = start_writer(stack, uri, "key", "e2", 300_000, chunk=50_000, file_size=100_000,
                          first_id=50_000, kill=True)
    _out, err = killed.communicate(timeout=180)
    assert killed.returncode == -9, err
    table = lake_table(stack, uri.rsplit("/", 1)[-1])
    assert table.version() == version
    assert len(_objects(stack, uri, ".parquet")) > 1  # its data files reached the store, uncommitted
    assert _core_rows(stack, uri, "key") == [(i, "e1") for i in range(0, 600)]
