"""The client's side of the push caps: a long throttle defers, a full table is final.

Against the stand-in over real HTTP, with waits recorded instead of slept: a 429 asking for an
hour must not be waited for (the worker would sit blocked), one asking for a minute still is,
and the refusal at a table's 5,000,000-row cap is told apart from other refusals. Then the
deferral record: it reads the rows back exactly as the export cut them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import requests
from pydantic import SecretStr

from blocks.powerbi import PowerBIStreamingDataset
from flows.export_powerbi import clean_frames, powerbi_columns
from flows.powerbi_deferral import Deferral, deferral_keys, recorded_columns
from powerbi.push import (
    DEFERRED,
    SKIPPED,
    PostStats,
    PowerBIRejected,
    PowerBITableFull,
    PowerBIThrottled,
    PushSummary,
    RetryPolicy,
    post_batch,
    rows_to_json_batches,
)
from processing.contract import load_contract
from tests.powerbi_support import RegisteredDataset, StandIn

pytest_plugins = ["tests.powerbi_fixtures"]

NUMBERS = {"n": "Int64"}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def one_batch(numbers: range) -> object:
    [batch] = list(rows_to_json_batches([{"n": n} for n in numbers], NUMBERS))
    return batch


def destination(dataset: RegisteredDataset) -> PowerBIStreamingDataset:
    return PowerBIStreamingDataset(push_url=SecretStr(dataset.push_url))


def test_a_429_asking_for_an_hour_is_not_waited_for(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.fault(dataset.id, "429", retry_after=3600)
    sleeps, stats = Sleeps(), PostStats()
    with pytest.raises(PowerBIThrottled) as throttled:
        post_batch(destination(dataset), one_batch(range(3)), session, sleep=sleeps, stats=stats)  # type: ignore[arg-type]
    assert throttled.value.retry_after == 3600 and not sleeps
    assert (stats.attempts, stats.throttled) == (1, 1)
    assert dataset.key not in str(throttled.value)
    assert standin.count(dataset.id) == 0


def test_a_429_asking_for_a_minute_is_still_waited_for(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.fault(dataset.id, "429", retry_after=60)
    sleeps = Sleeps()
    post_batch(destination(dataset), one_batch(range(3)), session, sleep=sleeps)  # type: ignore[arg-type]
    assert sleeps == [60.0] and standin.count(dataset.id) == 3


def test_the_hourly_cap_of_a_large_table_defers(standin: StandIn, session: requests.Session) -> None:
    dataset = standin.register(NUMBERS)
    standin.seed(dataset.id, dataset.table, 250_000)
    for number in range(120):
        post_batch(destination(dataset), one_batch(range(number, number + 1)), session)  # type: ignore[arg-type]
    standin.advance_clock(61)
    with pytest.raises(PowerBIThrottled) as throttled:
        post_batch(destination(dataset), one_batch(range(120, 121)), session, policy=RetryPolicy())  # type: ignore[arg-type]
    assert throttled.value.retry_after > 3000


def test_a_full_table_is_a_final_refusal_of_its_own_kind(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.seed(dataset.id, dataset.table, 5_000_000)
    sleeps = Sleeps()
    with pytest.raises(PowerBITableFull) as full:
        post_batch(destination(dataset), one_batch(range(2)), session, sleep=sleeps)  # type: ignore[arg-type]
    assert isinstance(full.value, PowerBIRejected) and full.value.code == "RowLimitExceeded"
    assert not sleeps and "5,000,000" in str(full.value)
    # another 400 stays an ordinary refusal
    standin_other = standin.register(NUMBERS)
    bad = next(rows_to_json_batches([{"n": "x"}], {"n": "String"}))
    with pytest.raises(PowerBIRejected) as refused:
        post_batch(destination(standin_other), bad, session)
    assert not isinstance(refused.value, PowerBITableFull)


def test_the_report_fields_say_the_status_posts_and_429s() -> None:
    summary = PushSummary(destination="d", status=DEFERRED, posts=3, throttled=1,
                          message="wait", retry_at="2026-12-07T12:00:00+00:00")
    report = summary.as_report()
    assert (report["powerbi"], report["powerbi_posts"], report["powerbi_throttled"]) == (DEFERRED, 3, 1)
    assert report["powerbi_retry_at"] == "2026-12-07T12:00:00+00:00"
    skipped = PushSummary(destination=None, skipped_reason="no destination").as_report()
    assert skipped["powerbi"] == SKIPPED and skipped["powerbi_posts"] == 0


def test_a_deferral_reads_the_rows_back_as_the_export_cut_them(tmp_path: Path) -> None:
    contract = load_contract("vendas")
    present = [name for name in contract.column_names if name != "categoria"]
    clean = tmp_path / "clean.csv"
    pl.DataFrame({
        "id_venda": [1, 2], "data_venda": ["2024-01-02", "2024-01-03"], "cliente": ["a", "b"],
        "produto": ["p", "q"], "quantidade": [1, 2], "preco_unitario": [1.5, 2.5],
        "valor_total": [1.5, 5.0], "uf": ["SP", "RJ"],
    }).write_csv(clean)
    record_key, rows_key = deferral_keys("raw/vendas/a.csv@e1")
    deferral = Deferral(
        source_bucket="raw", source_key="vendas/a.csv", source_etag="e1", source_size=10,
        contract="vendas", powerbi_table=contract.powerbi_table or "",
        columns=recorded_columns(contract, present), rows_key=rows_key, report_key="r",
        rows_at="s3://processed/vendas/a.csv", retry_at="2000-01-01T00:00:00+00:00",
        deferred_at="2000-01-01T00:00:00+00:00",
    )
    assert deferral.record_key() == record_key and deferral.is_due()
    assert deferral.present == present
    recorded = deferral.contract_as_recorded()

    def digests(of: object) -> list[str]:
        return [
            batch.digest for batch in rows_to_json_batches(
                clean_frames(clean, of, present), powerbi_columns(of, present)  # type: ignore[arg-type]
            )
        ]

    assert digests(recorded) == digests(contract)
    assert powerbi_columns(recorded, present) == powerbi_columns(contract, present)
