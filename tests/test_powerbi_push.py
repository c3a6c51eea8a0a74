"""The client pushes batches through faults without losing or repeating rows, and keeps secrets.

Everything goes over real HTTP to the stand-in; waits are recorded instead of slept, so that
a test of three 429s does not take three seconds.
"""

from __future__ import annotations

import logging
import math
import pickle
import traceback
from datetime import date
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from blocks.powerbi import PowerBIPushDataset, PowerBIStreamingDataset, block_name
from powerbi.push import (
    Batch,
    PostStats,
    PowerBIError,
    PowerBIRejected,
    PowerBIUnavailable,
    RetryPolicy,
    post_batch,
    push_rows,
    redact,
    rows_to_json_batches,
)
from tests.powerbi_support import (
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_GROUP,
    TEST_TENANT,
    RegisteredDataset,
    StandIn,
)

pytest_plugins = ["tests.powerbi_fixtures"]

COLUMNS = {"id": "Int64", "price": "Double", "day": "DateTime", "who": "String"}
FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.04, max_attempts=4, timeout=(5.0, 30.0))


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": i, "price": i / 2, "day": date(2026, 11, 1 + i % 28), "who": f"c{i}"}
        for i in range(start, start + count)
    ]


def one_batch(count: int = 10) -> Batch:
    (batch,) = rows_to_json_batches(rows(count), COLUMNS)
    return batch


def streaming(dataset: RegisteredDataset, streaming_only: bool = False) -> PowerBIStreamingDataset:
    return PowerBIStreamingDataset(
        push_url=SecretStr(dataset.push_url), streaming_only=streaming_only
    )


def push_dataset(
    standin: StandIn, dataset: RegisteredDataset, secret: str = TEST_CLIENT_SECRET
) -> PowerBIPushDataset:
    return PowerBIPushDataset(
        tenant_id=TEST_TENANT,
        client_id=TEST_CLIENT_ID,
        client_secret=SecretStr(secret),
        workspace_id=TEST_GROUP,
        dataset_id=dataset.id,
        table=dataset.table,
        authority_host=standin.url,
        api_base_url=standin.url,
    )


def assert_exactly(standin: StandIn, dataset: RegisteredDataset, ids: range) -> None:
    stored = [row["id"] for row in standin.rows(dataset.id)]
    assert sorted(stored) == list(ids), "rows missing or repeated"


def everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text]
    )


@pytest.fixture
def session() -> Any:
    with requests.Session() as http:
        yield http


def test_429s_are_waited_out_for_their_retry_after_and_each_row_arrives_once(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "429", count=3, retry_after=2)
    sleeps, stats = Sleeps(), PostStats()
    post_batch(streaming(dataset), one_batch(), session, policy=FAST, sleep=sleeps, stats=stats)
    assert sleeps == [2.0, 2.0, 2.0]
    assert stats.statuses == [429, 429, 429, 200]
    assert_exactly(standin, dataset, range(10))


def test_500s_are_retried_with_exponential_backoff_and_each_row_arrives_once(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "500", count=3)
    sleeps = Sleeps()
    post_batch(streaming(dataset), one_batch(), session, policy=FAST, sleep=sleeps)
    assert sleeps == [0.01, 0.02, 0.04]
    assert_exactly(standin, dataset, range(10))


def test_every_post_retries_included_takes_a_rate_limit_slot_first(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "429", count=1, retry_after=1)
    standin.fault(dataset.id, "500", count=1)
    slots: list[int] = []
    stats = PostStats()
    post_batch(streaming(dataset), one_batch(), session, policy=FAST, sleep=Sleeps(), stats=stats,
               before_each_post=lambda: slots.append(len(slots)))
    assert len(slots) == stats.attempts == 3
    assert_exactly(standin, dataset, range(10))


def test_a_dropped_connection_is_retried_and_each_row_arrives_once(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "close", count=2)
    stats = PostStats()
    post_batch(streaming(dataset), one_batch(), session, policy=FAST, sleep=Sleeps(), stats=stats)
    assert stats.failures == 2 and stats.statuses == [200]
    assert_exactly(standin, dataset, range(10))


def test_a_service_that_keeps_failing_raises_unavailable_after_bounded_attempts(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "500", count=10)
    stats = PostStats()
    with pytest.raises(PowerBIUnavailable, match="HTTP 500 after 4 attempts"):
        post_batch(
            streaming(dataset), one_batch(), session, policy=FAST, sleep=Sleeps(), stats=stats
        )
    assert stats.attempts == 4
    assert standin.count(dataset.id) == 0


def test_a_400_fails_with_the_services_message(standin: StandIn, session: requests.Session) -> None:
    dataset = standin.register(COLUMNS)
    bad = Batch(number=0, first_row=0, row_count=1, body=b'[{"id": "not a number"}]')
    with pytest.raises(PowerBIRejected) as raised:
        post_batch(streaming(dataset), bad, session, policy=FAST, sleep=Sleeps())
    assert raised.value.status == 400
    assert "expected Int64" in str(raised.value) and "'id'" in str(raised.value)


def test_a_wrong_push_key_fails_with_403_and_the_key_appears_nowhere(
    standin: StandIn, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = standin.register(COLUMNS)
    wrong_key = "wrong-key-9f8e7d6c5b4a"
    block = PowerBIStreamingDataset(
        push_url=SecretStr(dataset.push_url.replace(dataset.key, wrong_key))
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PowerBIRejected) as raised:
        post_batch(block, one_batch(), session, policy=FAST, sleep=Sleeps())
    assert raised.value.status == 403
    said = everything_said(raised.value, caplog)
    assert wrong_key not in said
    assert "push key is missing or wrong" in said
    assert "rows?key=***" in caplog.text  # urllib3's own request line, redacted
    assert wrong_key not in repr(block) and wrong_key not in block.describe()


def test_connection_errors_never_reveal_the_push_key(
    standin: StandIn, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = standin.register(COLUMNS)
    standin.fault(dataset.id, "close", count=5)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PowerBIUnavailable) as raised:
        post_batch(streaming(dataset), one_batch(), session, policy=FAST, sleep=Sleeps())
    said = everything_said(raised.value, caplog)
    assert dataset.key not in said
    assert "ConnectionError" in said


def test_the_push_dataset_block_gets_a_cached_token_through_msal_and_writes_its_table(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS, table="vendas")
    block = push_dataset(standin, dataset)
    assert block.get_token() == block.get_token()  # msal serves the second from its cache
    for batch in rows_to_json_batches(rows(250), COLUMNS, max_rows=100):
        post_batch(block, batch, session, policy=FAST, sleep=Sleeps())
    assert_exactly(standin, dataset, range(250))


def test_a_token_the_service_no_longer_accepts_is_refreshed_once_on_401(
    standin: StandIn, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dataset = standin.register(COLUMNS, table="vendas")
    block = push_dataset(standin, dataset)
    old = block.get_token()
    standin.http.delete(f"{standin.url}/_standin/tokens", timeout=10).raise_for_status()
    stats = PostStats()
    post_batch(block, one_batch(), session, policy=FAST, sleep=Sleeps(), stats=stats)
    assert stats.statuses == [401, 200]
    new = block.get_token()
    assert new != old
    assert old not in caplog.text and new not in caplog.text
    assert TEST_CLIENT_SECRET not in caplog.text
    assert_exactly(standin, dataset, range(10))


def test_a_block_that_has_a_token_can_still_be_pickled_without_it(standin: StandIn) -> None:
    block = push_dataset(standin, standin.register(COLUMNS, table="vendas"))
    token = block.get_token()
    copy = pickle.loads(pickle.dumps(block))
    assert token.encode() not in pickle.dumps(block)
    assert copy.get_token() and copy.dataset_id == block.dataset_id


def test_a_wrong_client_secret_fails_without_revealing_it(
    standin: StandIn, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = standin.register(COLUMNS, table="vendas")
    secret = "not-the-secret-1234567"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PowerBIRejected) as raised:
        post_batch(
            push_dataset(standin, dataset, secret),
            one_batch(),
            session,
            policy=FAST,
            sleep=Sleeps(),
        )
    assert "invalid_client" in str(raised.value)
    assert secret not in everything_said(raised.value, caplog)
    assert standin.count(dataset.id) == 0


def test_plain_http_is_refused_for_an_authority_off_this_machine() -> None:
    block = PowerBIPushDataset(
        tenant_id="t",
        client_id="c",
        client_secret=SecretStr("s"),
        workspace_id="w",
        dataset_id="d",
        table="x",
        authority_host="http://login.example.com",
    )
    with pytest.raises(PowerBIError, match="https"):
        block.get_token()


def test_a_multi_batch_push_through_faults_arrives_complete_without_duplicates(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    for kind in ("429", "500", "close", "429", "close"):
        standin.fault(dataset.id, kind, retry_after=1)
    sleeps = Sleeps()
    summary = push_rows(
        streaming(dataset), rows(25_000), COLUMNS, session, policy=FAST, sleep=sleeps
    )
    assert (summary.rows, summary.batches) == (25_000, 3)
    assert sleeps.count(1.0) == 2  # the two 429s waited their Retry-After
    assert_exactly(standin, dataset, range(25_000))


def test_nan_none_dates_and_long_strings_arrive_as_values_the_service_accepts(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS)
    sent = [
        {"id": 1, "price": math.nan, "day": date(2026, 2, 28), "who": "x" * 5_000},
        {"id": 2, "price": math.inf, "day": None, "who": None},
        {"id": None, "price": 2.5, "day": "2026-03-01", "who": "Ação"},
    ]
    summary = push_rows(streaming(dataset), sent, COLUMNS, session, policy=FAST)
    assert summary.strings_cut == 1 and summary.infinite_nulled == 1
    stored = standin.rows(dataset.id)
    assert stored == [
        {"id": 1, "price": None, "day": "2026-02-28T00:00:00", "who": "x" * 4_000},
        {"id": 2, "price": None, "day": None, "who": None},
        {"id": None, "price": 2.5, "day": "2026-03-01T00:00:00", "who": "Ação"},
    ]


def test_a_streaming_only_block_keeps_every_request_within_15_kb(
    standin: StandIn, session: requests.Session
) -> None:
    dataset = standin.register(COLUMNS, streaming_only=True)
    sent = [{**row, "who": "w" * 150} for row in rows(400)]
    summary = push_rows(
        streaming(dataset, streaming_only=True), sent, COLUMNS, session, policy=FAST
    )
    assert summary.batches > 1
    assert_exactly(standin, dataset, range(400))


def test_redaction_hides_keys_tokens_and_named_secrets() -> None:
    text = (
        "POST https://api.powerbi.com/beta/t/datasets/d/rows?key=abc%2Bdef&x=1 "
        "Authorization: Bearer eyJ0eXAi.abc-def_ghi hunter2-secret"
    )
    cleaned = redact(text, ["hunter2-secret"])
    assert "abc%2Bdef" not in cleaned and "eyJ0eXAi" not in cleaned and "hunter2" not in cleaned
    assert "rows?key=***&x=1" in cleaned


def test_blocks_are_named_after_their_contract() -> None:
    assert block_name("vendas") == "powerbi-vendas"


def test_push_batch_retries_what_a_later_attempt_can_get_past() -> None:
    """Power BI unavailable, or Prefect too busy to hand out a rate-limit slot: retried.
    A refusal (400/403) or a bug: final."""
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.states import Completed, Failed

    from flows.export_powerbi import _retry_when_unavailable
    from powerbi.push import PowerBIRejected, PowerBIUnavailable

    def failed_with(error: Exception) -> Any:
        return Failed(data=error)

    assert _retry_when_unavailable(None, None, failed_with(PowerBIUnavailable("503")))
    assert _retry_when_unavailable(None, None, failed_with(ConcurrencySlotAcquisitionError("503 busy")))
    assert not _retry_when_unavailable(None, None, failed_with(PowerBIRejected("400 bad row")))
    assert not _retry_when_unavailable(None, None, failed_with(ValueError("a bug")))
    assert not _retry_when_unavailable(None, None, Completed(data=3))
