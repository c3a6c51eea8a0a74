"""The stand-in's per-table caps of push datasets, at the service's own numbers.

Microsoft's "Push semantic model limitations": 5,000,000 rows per table without a retention
policy, 200,000 with `basicFIFO` (the oldest dropped), and 120 POST rows requests per hour
once a table holds 250,000 rows. The tests reach those numbers by seeding a table's row count
and moving the stand-in's clock through its admin API, never by lowering the caps.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from ivi.cli import build_parser
from ivi.powerbi_command import create_dataset_block
from powerbi_standin.store import Store
from tests.powerbi_support import TEST_GROUP, TEST_STATIC_TOKEN, StandIn
from tests.test_powerbi_command import standin_settings

pytest_plugins = ["tests.powerbi_fixtures"]

NUMBERS = {"n": "Int64"}


def post(session: requests.Session, url: str, numbers: range) -> requests.Response:
    return session.post(url, json=[{"n": n} for n in numbers], timeout=30)


def error_of(answer: requests.Response) -> dict[str, Any]:
    return dict(answer.json()["error"])


def test_a_table_without_retention_takes_5_million_rows_and_refuses_the_post_beyond(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    assert standin.seed(dataset.id, dataset.table, 4_999_990) == 4_999_990
    assert post(http_session, dataset.push_url, range(10)).status_code == 200
    refused = post(http_session, dataset.push_url, range(10, 11))
    assert refused.status_code == 400
    error = error_of(refused)
    assert error["code"] == "RowLimitExceeded"
    assert "5,000,000" in error["message"] and "basicFIFO" in error["message"]
    assert standin.count(dataset.id) == 5_000_000  # refused whole: nothing of it stored
    assert [row["n"] for row in standin.rows(dataset.id)] == list(range(10))
    assert standin.dataset(dataset.id)["table_rows"] == {dataset.table: 5_000_000}


def test_a_post_that_would_cross_the_cap_is_refused_whole(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.seed(dataset.id, dataset.table, 4_999_995)
    assert post(http_session, dataset.push_url, range(6)).status_code == 400
    assert post(http_session, dataset.push_url, range(5)).status_code == 200
    assert standin.count(dataset.id) == 5_000_000


def test_seeding_a_table_without_retention_past_its_cap_is_refused(standin: StandIn) -> None:
    dataset = standin.register(NUMBERS)
    with pytest.raises(requests.HTTPError) as refused:
        standin.seed(dataset.id, dataset.table, 5_000_001)
    assert refused.value.response.status_code == 400
    assert standin.count(dataset.id) == 0


def test_a_basic_fifo_table_keeps_its_latest_200_000_rows(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS, retention="basicFIFO")
    assert standin.dataset(dataset.id)["defaultRetentionPolicy"] == "basicFIFO"
    assert post(http_session, dataset.push_url, range(1, 11)).status_code == 200
    # 199,995 more: the five oldest rows (1..5) leave the window
    assert standin.seed(dataset.id, dataset.table, 199_995) == 200_000
    assert [row["n"] for row in standin.rows(dataset.id)] == [6, 7, 8, 9, 10]
    # a push never fails for room: rows 6..10 go, the new ones stay
    assert post(http_session, dataset.push_url, range(11, 16)).status_code == 200
    assert standin.count(dataset.id) == 200_000
    assert [row["n"] for row in standin.rows(dataset.id)] == [11, 12, 13, 14, 15]
    # far past 5,000,000 seeded rows: still the window, still accepted
    assert standin.seed(dataset.id, dataset.table, 6_000_000) == 200_000
    assert post(http_session, dataset.push_url, range(16, 18)).status_code == 200
    assert standin.count(dataset.id) == 200_000
    assert [row["n"] for row in standin.rows(dataset.id)] == [16, 17]


def test_from_250_000_rows_the_dataset_takes_120_posts_an_hour(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.seed(dataset.id, dataset.table, 250_000)
    for number in range(120):
        assert post(http_session, dataset.push_url, range(number, number + 1)).ok, number
    standin.advance_clock(61)  # past the per-minute window, within the hour
    throttled = post(http_session, dataset.push_url, range(120, 121))
    assert throttled.status_code == 429
    assert 3_000 < int(throttled.headers["Retry-After"]) <= 3_600
    assert "250,000" in error_of(throttled)["message"]
    assert standin.count(dataset.id) == 250_120
    standin.advance_clock(3_600)  # the hour has passed
    assert post(http_session, dataset.push_url, range(120, 121)).status_code == 200
    assert standin.count(dataset.id) == 250_121


def test_below_250_000_rows_only_the_per_minute_rate_applies(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(NUMBERS)
    standin.seed(dataset.id, dataset.table, 100_000)
    for number in range(120):
        assert post(http_session, dataset.push_url, range(number, number + 1)).ok, number
    standin.advance_clock(61)
    assert post(http_session, dataset.push_url, range(120, 121)).status_code == 200


def test_create_dataset_honours_default_retention_policy(
    standin: StandIn, http_session: requests.Session
) -> None:
    url = f"{standin.url}/v1.0/myorg/groups/{TEST_GROUP}/datasets"
    headers = {"Authorization": f"Bearer {TEST_STATIC_TOKEN}"}
    definition = {"name": "fifo", "tables": [{"name": "t", "columns": [
        {"name": "n", "dataType": "Int64"}]}]}
    for asked, expected in (("basicFIFO", "basicFIFO"), ("None", "None"), (None, "None")):
        params = {"defaultRetentionPolicy": asked} if asked else {}
        created = http_session.post(url, params=params, json=definition, headers=headers, timeout=10)
        assert created.status_code == 201, created.text
        assert created.json()["defaultRetentionPolicy"] == expected
        assert standin.dataset(created.json()["id"])["defaultRetentionPolicy"] == expected
    wrong = http_session.post(
        url, params={"defaultRetentionPolicy": "forever"}, json=definition, headers=headers, timeout=10
    )
    assert wrong.status_code == 400 and "basicFIFO" in error_of(wrong)["message"]


def test_seeding_and_the_clock_need_the_admin_token(standin: StandIn) -> None:
    dataset = standin.register(NUMBERS)
    seed = requests.post(
        f"{standin.url}/_standin/datasets/{dataset.id}/tables/{dataset.table}/seed",
        json={"rows": 5_000_000}, timeout=10,
    )
    clock = requests.post(f"{standin.url}/_standin/clock", json={"advance_seconds": 3600}, timeout=10)
    assert (seed.status_code, clock.status_code) == (401, 401)
    assert standin.count(dataset.id) == 0
    for bad in ({"rows": 0}, {"rows": "many"}, {}):
        answer = standin.http.post(
            f"{standin.url}/_standin/datasets/{dataset.id}/tables/{dataset.table}/seed",
            json=bad, timeout=10,
        )
        assert answer.status_code == 400
    for bad_step in ({"advance_seconds": -1}, {"advance_seconds": 0}, {"advance_seconds": "1h"}):
        assert standin.http.post(f"{standin.url}/_standin/clock", json=bad_step, timeout=10).status_code == 400


def test_a_stand_in_file_from_before_the_caps_opens_with_no_retention(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE datasets (id TEXT PRIMARY KEY, name TEXT NOT NULL, group_id TEXT NOT NULL,"
            " push_key TEXT NOT NULL, default_mode TEXT NOT NULL, tables_json TEXT NOT NULL,"
            " limits_json TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL);"
            "CREATE TABLE posts (seq INTEGER PRIMARY KEY AUTOINCREMENT, dataset_id TEXT NOT NULL,"
            " table_name TEXT NOT NULL, received_at REAL NOT NULL, row_count INTEGER NOT NULL,"
            " rows_json TEXT NOT NULL);"
            "INSERT INTO datasets VALUES ('d', 'd', 'g', 'k', 'Push', "
            "'[{\"name\": \"t\", \"columns\": [[\"n\", \"Int64\"]]}]', '{}', 0);"
            "INSERT INTO posts (dataset_id, table_name, received_at, row_count, rows_json) "
            "VALUES ('d', 't', 0, 1, '[{\"n\": 1}]');"
        )
    store = Store(path)
    try:
        dataset = store.dataset("d")
        assert dataset is not None and dataset.retention == "None"
        assert store.table_row_count("d", "t") == 1
        assert store.posts("d") == [{"received_at": 0, "rows": 1}]
    finally:
        store.close()


@pytest.mark.parametrize(("choice", "policy"), [("basicFIFO", "basicFIFO"), ("none", "None")])
def test_create_dataset_makes_the_dataset_with_the_chosen_retention(
    standin: StandIn, tmp_path: Path, choice: str, policy: str
) -> None:
    block = create_dataset_block("vendas", standin_settings(standin, tmp_path), retention=choice)
    assert standin.dataset(block.dataset_id)["defaultRetentionPolicy"] == policy


def test_the_retention_option_defaults_to_basic_fifo_and_refuses_other_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    assert parser.parse_args(["powerbi", "create-dataset", "--contract", "vendas"]).retention == "basicFIFO"
    with pytest.raises(SystemExit):
        parser.parse_args(["powerbi", "create-dataset", "--contract", "vendas", "--retention", "forever"])
    assert "invalid choice: 'forever'" in capsys.readouterr().err
