"""The stand-in enforces the Power BI contract, over real HTTP, like the service answers it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from powerbi_standin.adminauth import ADMIN_TOKEN_ENV, is_loopback
from powerbi_standin.app import create_app

from tests.powerbi_support import (
    TEST_ADMIN_TOKEN,
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_GROUP,
    TEST_STATIC_TOKEN,
    TEST_TENANT,
    StandIn,
    StandInServer,
)

pytest_plugins = ["tests.powerbi_fixtures"]

SALES = {"id": "Int64", "price": "Double", "paid": "Boolean", "day": "DateTime", "who": "String"}
GOOD_ROW: dict[str, Any] = {
    "id": 1,
    "price": 9.5,
    "paid": True,
    "day": "2026-11-29T10:00:00",
    "who": "Ana",
}


def post_raw(http_session: requests.Session, url: str, body: bytes) -> requests.Response:
    return http_session.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def error_of(response: requests.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return dict(body["error"])


def test_rows_with_the_right_key_are_stored_and_counted(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    rows = [GOOD_ROW, {**GOOD_ROW, "id": 2, "who": None, "price": 3}]
    answer = http_session.post(dataset.push_url, json=rows, timeout=10)
    assert answer.status_code == 200
    assert standin.rows(dataset.id) == [GOOD_ROW, {**GOOD_ROW, "id": 2, "who": None, "price": 3}]


def test_a_wrong_or_missing_push_key_is_refused_with_403(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    wrong = dataset.push_url.replace(dataset.key, "not-the-key")
    missing = dataset.push_url.split("?")[0]
    for url in (wrong, missing):
        answer = http_session.post(url, json=[GOOD_ROW], timeout=10)
        assert answer.status_code == 403
        assert error_of(answer)["code"] == "Forbidden"
    assert standin.count(dataset.id) == 0


def test_a_value_of_the_wrong_type_is_refused_with_a_message_naming_it(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    cases: dict[str, Any] = {
        "id": "7",  # Int64 must be a JSON integer
        "price": "9.5",
        "paid": 1,
        "day": "29/11/2026",
        "who": 42,
    }
    for column, value in cases.items():
        answer = http_session.post(
            dataset.push_url, json=[GOOD_ROW, {**GOOD_ROW, column: value}], timeout=10
        )
        assert answer.status_code == 400, column
        message = error_of(answer)["message"]
        assert "row 1" in message and repr(column) in message
    assert (
        http_session.post(dataset.push_url, json=[{**GOOD_ROW, "id": 1.5}], timeout=10).status_code
        == 400
    )
    assert (
        http_session.post(dataset.push_url, json=[{**GOOD_ROW, "id": True}], timeout=10).status_code
        == 400
    )
    assert standin.count(dataset.id) == 0


def test_an_unknown_column_is_refused(standin: StandIn, http_session: requests.Session) -> None:
    dataset = standin.register(SALES)
    answer = http_session.post(dataset.push_url, json=[{**GOOD_ROW, "surprise": 1}], timeout=10)
    assert answer.status_code == 400
    assert "surprise" in error_of(answer)["message"]


def test_more_than_10000_rows_in_one_post_is_refused_and_10000_accepted(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"n": "Int64"})
    body = json.dumps([{"n": i} for i in range(10_001)]).encode()
    answer = post_raw(http_session, dataset.push_url, body)
    assert answer.status_code == 400
    assert "10000" in error_of(answer)["message"]
    assert post_raw(
        http_session, dataset.push_url, json.dumps([{"n": i} for i in range(10_000)]).encode()
    ).ok
    assert standin.count(dataset.id) == 10_000


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_refused_although_python_json_reads_them(
    standin: StandIn, http_session: requests.Session, token: bytes
) -> None:
    dataset = standin.register(SALES)
    answer = post_raw(http_session, dataset.push_url, b'[{"id": 1, "price": ' + token + b"}]")
    assert answer.status_code == 400
    assert standin.count(dataset.id) == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"[", b"{", b"\xff\xfe", b"[1, 2]", b'{"rows": []}', b"null", b"[" * 100_000, b'"x"'],
    ids=[
        "empty",
        "open-array",
        "open-object",
        "not-utf8",
        "not-objects",
        "object",
        "null",
        "deep-nesting",
        "string",
    ],
)
def test_malformed_bodies_get_400_and_the_server_keeps_answering(
    standin: StandIn, http_session: requests.Session, body: bytes
) -> None:
    dataset = standin.register(SALES)
    answer = post_raw(http_session, dataset.push_url, body)
    assert answer.status_code == 400
    assert error_of(answer)["message"]
    assert http_session.post(dataset.push_url, json=[GOOD_ROW], timeout=10).status_code == 200


def test_the_121st_post_within_a_minute_gets_429_with_retry_after(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"n": "Int64"})
    for i in range(120):
        assert (
            http_session.post(dataset.push_url, json=[{"n": i}], timeout=10).status_code == 200
        ), i
    answer = http_session.post(dataset.push_url, json=[{"n": 120}], timeout=10)
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert standin.count(dataset.id) == 120
    other = standin.register({"n": "Int64"})  # the limit is per dataset
    assert http_session.post(other.push_url, json=[{"n": 1}], timeout=10).status_code == 200


def test_rows_beyond_the_hourly_limit_get_429(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"n": "Int64"}, limits={"rows_per_hour": 100})
    assert http_session.post(dataset.push_url, json=[{"n": i} for i in range(80)], timeout=10).ok
    answer = http_session.post(dataset.push_url, json=[{"n": i} for i in range(21)], timeout=10)
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 60
    assert http_session.post(dataset.push_url, json=[{"n": i} for i in range(20)], timeout=10).ok
    assert standin.count(dataset.id) == 100


def test_a_body_over_the_size_limit_is_refused(
    standin: StandIn, http_session: requests.Session
) -> None:
    small = standin.register({"s": "String"}, limits={"body_bytes": 50_000})
    row = {"s": "x" * 3_000}
    too_big = json.dumps([row] * 20).encode()  # ~60 KB
    answer = post_raw(http_session, small.push_url, too_big)
    assert answer.status_code == 413 and "50000" in error_of(answer)["message"]
    assert post_raw(http_session, small.push_url, json.dumps([row] * 10).encode()).ok


def test_a_streaming_only_dataset_takes_at_most_15_kb_per_request(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"s": "String"}, streaming_only=True)
    row = {"s": "y" * 1_000}
    assert (
        post_raw(http_session, dataset.push_url, json.dumps([row] * 16).encode()).status_code == 413
    )
    assert post_raw(http_session, dataset.push_url, json.dumps([row] * 14).encode()).ok


def test_a_body_over_16_mb_is_refused(standin: StandIn, http_session: requests.Session) -> None:
    dataset = standin.register({"s": "String"})
    row = json.dumps({"s": "z" * 3_900}).encode()
    body = b"[" + b",".join([row] * 4_400) + b"]"  # 4,400 rows but > 16 MiB
    assert len(body) > 16 * 1024 * 1024
    answer = post_raw(http_session, dataset.push_url, body)
    assert answer.status_code == 413


def test_strings_longer_than_4000_characters_are_refused(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"s": "String"})
    assert http_session.post(dataset.push_url, json=[{"s": "é" * 4_000}], timeout=10).ok
    answer = http_session.post(dataset.push_url, json=[{"s": "é" * 4_001}], timeout=10)
    assert answer.status_code == 400 and "4000" in error_of(answer)["message"]


def test_more_than_5_pending_requests_get_429(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register({"n": "Int64"})
    standin.fault(dataset.id, "delay", count=5, seconds=1.5)
    results: list[int] = []

    def slow_post() -> None:
        with requests.Session() as own:
            results.append(own.post(dataset.push_url, json=[{"n": 1}], timeout=10).status_code)

    threads = [threading.Thread(target=slow_post) for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while standin.dataset(dataset.id)["pending"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = http_session.post(dataset.push_url, json=[{"n": 2}], timeout=10)
    for thread in threads:
        thread.join()
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert results == [200] * 5
    assert standin.count(dataset.id) == 5


def test_a_dataset_with_more_than_75_columns_cannot_be_created(
    standin: StandIn, http_session: requests.Session
) -> None:
    auth = {"Authorization": f"Bearer {TEST_STATIC_TOKEN}"}
    url = f"{standin.url}/v1.0/myorg/groups/{TEST_GROUP}/datasets"

    def definition(columns: int) -> dict[str, Any]:
        return {
            "name": "wide",
            "defaultMode": "Push",
            "tables": [
                {
                    "name": "t",
                    "columns": [{"name": f"c{i}", "dataType": "Int64"} for i in range(columns)],
                }
            ],
        }

    answer = http_session.post(url, json=definition(76), headers=auth, timeout=10)
    assert answer.status_code == 400 and "75" in error_of(answer)["message"]
    assert http_session.post(url, json=definition(75), headers=auth, timeout=10).status_code == 201


def test_a_created_dataset_gets_an_id_and_a_push_key_that_works(
    standin: StandIn, http_session: requests.Session
) -> None:
    answer = http_session.post(
        f"{standin.url}/v1.0/myorg/groups/{TEST_GROUP}/datasets",
        json={
            "name": "sales",
            "defaultMode": "Push",
            "tables": [
                {"name": "sales", "columns": [{"name": k, "dataType": v} for k, v in SALES.items()]}
            ],
        },
        headers={"Authorization": f"Bearer {TEST_STATIC_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 201
    created = answer.json()
    assert created["name"] == "sales" and created["id"]
    assert http_session.post(created["pushUrl"], json=[GOOD_ROW], timeout=10).ok
    rest = (
        f"{standin.url}/v1.0/myorg/groups/{TEST_GROUP}/datasets/{created['id']}/tables/sales/rows"
    )
    assert http_session.post(
        rest,
        json={"rows": [GOOD_ROW]},
        timeout=10,
        headers={"Authorization": f"Bearer {TEST_STATIC_TOKEN}"},
    ).ok
    assert standin.count(created["id"]) == 2


def test_the_rest_rows_route_needs_a_bearer_token_it_issued(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES, table="sales")
    url = f"{standin.url}/v1.0/myorg/groups/{TEST_GROUP}/datasets/{dataset.id}/tables/sales/rows"
    body = {"rows": [GOOD_ROW]}
    assert http_session.post(url, json=body, timeout=10).status_code == 401
    assert (
        http_session.post(
            url, json=body, headers={"Authorization": "Bearer forged"}, timeout=10
        ).status_code
        == 401
    )
    token = http_session.post(
        f"{standin.url}/{TEST_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": TEST_CLIENT_ID,
            "client_secret": TEST_CLIENT_SECRET,
            "scope": "https://analysis.windows.net/powerbi/api/.default",
        },
        timeout=10,
    ).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert http_session.post(url, json=body, headers=bearer, timeout=10).status_code == 200
    other_group = url.replace(TEST_GROUP, "someone-elses-workspace")
    assert http_session.post(other_group, json=body, headers=bearer, timeout=10).status_code == 403
    assert http_session.post(url, json=[GOOD_ROW], headers=bearer, timeout=10).status_code == 400
    assert standin.count(dataset.id) == 1


def test_the_token_endpoint_refuses_a_wrong_secret(
    standin: StandIn, http_session: requests.Session
) -> None:
    answer = http_session.post(
        f"{standin.url}/{TEST_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": TEST_CLIENT_ID,
            "client_secret": "wrong",
            "scope": "https://analysis.windows.net/powerbi/api/.default",
        },
        timeout=10,
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_a_queued_close_fault_drops_the_connection_and_stores_nothing(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    standin.fault(dataset.id, "close")
    with pytest.raises(requests.ConnectionError):
        http_session.post(dataset.push_url, json=[GOOD_ROW], timeout=10)
    assert standin.count(dataset.id) == 0
    assert http_session.post(dataset.push_url, json=[GOOD_ROW], timeout=10).ok


def test_queued_429_and_500_faults_answer_once_each_then_clear(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    standin.fault(dataset.id, "429", count=2, retry_after=7)
    standin.fault(dataset.id, "500")
    answers = [http_session.post(dataset.push_url, json=[GOOD_ROW], timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 500, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert error_of(answers[2])["code"] == "InternalServerError"
    assert standin.count(dataset.id) == 1


def test_deleting_rows_empties_the_dataset(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    assert http_session.post(dataset.push_url, json=[GOOD_ROW] * 3, timeout=10).ok
    assert standin.http.delete(
        f"{standin.url}/_standin/datasets/{dataset.id}/rows", timeout=10
    ).json() == {"deleted": 3}
    assert standin.count(dataset.id) == 0


def test_the_page_shows_each_datasets_row_count_and_refreshes_itself(
    standin: StandIn, http_session: requests.Session
) -> None:
    dataset = standin.register(SALES)
    assert http_session.post(dataset.push_url, json=[GOOD_ROW] * 3, timeout=10).ok
    page = standin.http.get(f"{standin.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"data-dataset='{dataset.id}'>3</span>" in page.text
    assert "http-equiv='refresh'" in page.text
    assert dataset.key not in page.text


def test_rows_and_datasets_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "standin.sqlite"
    first = StandInServer(db).start()
    try:
        registered = requests.post(
            f"{first.url}/_standin/datasets",
            json={"id": "kept", "key": "kept-key", "columns": [{"name": "n", "dataType": "Int64"}]},
            timeout=10,
        )
        assert registered.status_code == 201
        push = f"{first.url}/beta/t/datasets/kept/rows?key=kept-key"
        assert requests.post(push, json=[{"n": 1}, {"n": 2}], timeout=10).ok
    finally:
        first.stop()
    second = StandInServer(db).start()
    try:
        rows = requests.get(f"{second.url}/_standin/datasets/kept/rows", timeout=10).json()
        assert rows["count"] == 2 and rows["rows"] == [{"n": 1}, {"n": 2}]
        push = f"{second.url}/beta/t/datasets/kept/rows?key=kept-key"
        assert requests.post(push, json=[{"n": 3}], timeout=10).ok
        assert (
            requests.get(f"{second.url}/_standin/datasets/kept/rows", timeout=10).json()["count"]
            == 3
        )
    finally:
        second.stop()


def test_python_m_powerbi_standin_serves_on_the_given_port_and_db(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "cli.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "powerbi_standin", "--port", str(port), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the stand-in did not answer"
                time.sleep(0.1)
        assert page.status_code == 200 and "Power BI stand-in" in page.text
        assert db.exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- The admin API's token -----------------------------------------------------------------
ADMIN_ROUTES = [
    ("GET", "/"),
    ("GET", "/_standin/datasets"),
    ("POST", "/_standin/datasets"),
    ("GET", "/_standin/datasets/ds"),
    ("GET", "/_standin/datasets/ds/rows"),
    ("GET", "/_standin/datasets/ds/posts"),
    ("GET", "/_standin/datasets/ds/requests"),
    ("DELETE", "/_standin/datasets/ds/rows"),
    ("POST", "/_standin/faults"),
    ("DELETE", "/_standin/faults"),
    ("DELETE", "/_standin/tokens"),
    ("GET", "/_standin/docs"),
    ("GET", "/_standin/openapi.json"),
]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    """The stand-in app with an admin token, and one dataset `ds` holding one row."""
    app = create_app(tmp_path / "guarded.sqlite", admin_token=TEST_ADMIN_TOKEN)
    with TestClient(app) as client:
        answer = client.post(
            "/_standin/datasets",
            json={"id": "ds", "key": "ds-key", "columns": [{"name": "n", "dataType": "Int64"}]},
            headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"},
        )
        assert answer.status_code == 201
        assert client.post("/beta/t/datasets/ds/rows?key=ds-key", json=[{"n": 1}]).status_code == 200
        yield client


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TEST_ADMIN_TOKEN}x", "Bearer ", f"Token {TEST_ADMIN_TOKEN}"],
)
def test_every_admin_route_answers_401_without_the_right_admin_token(
    guarded: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = guarded.request(method, path, headers=headers, json={"id": "x", "columns": []})
    assert answer.status_code == 401
    assert "ds-key" not in answer.text
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_a_refused_admin_call_changes_nothing(guarded: TestClient) -> None:
    assert guarded.delete("/_standin/datasets/ds/rows").status_code == 401
    assert guarded.post("/_standin/faults", json={"kind": "500"}).status_code == 401
    # the row is still there and no fault was queued: the next push is answered 200
    assert guarded.post("/beta/t/datasets/ds/rows?key=ds-key", json=[{"n": 2}]).status_code == 200
    rows = guarded.get(
        "/_standin/datasets/ds/rows", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    )
    assert rows.json()["count"] == 2


def test_the_admin_token_opens_the_admin_api_as_bearer_or_as_a_browsers_basic_password(
    guarded: TestClient,
) -> None:
    bearer = guarded.get(
        "/_standin/datasets/ds", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    )
    assert bearer.status_code == 200 and bearer.json()["id"] == "ds"
    page = guarded.get("/", auth=("anyone", TEST_ADMIN_TOKEN))
    assert page.status_code == 200 and "data-dataset='ds'" in page.text
    assert guarded.get("/", auth=("anyone", "wrong")).status_code == 401


def test_the_service_routes_and_the_health_check_need_no_admin_token(guarded: TestClient) -> None:
    assert guarded.get("/_standin/healthz").json() == {"ok": True}
    assert guarded.post("/beta/t/datasets/ds/rows?key=ds-key", json=[{"n": 3}]).status_code == 200
    assert guarded.post("/beta/t/datasets/ds/rows?key=wrong", json=[{"n": 3}]).status_code == 403


def test_without_an_admin_token_the_admin_api_is_open_as_before(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "open.sqlite")) as client:
        assert client.get("/_standin/datasets").status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
        ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False),
        ("10.0.0.5", False), ("powerbi-standin", False), ("128.0.0.1", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_stand_in_refuses_to_listen_beyond_loopback_without_an_admin_token(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "powerbi_standin", "--host", "0.0.0.0", "--port", "1",
         "--db", str(tmp_path / "x.sqlite")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "0.0.0.0" in lines[0] and ADMIN_TOKEN_ENV in lines[0]
    assert not (tmp_path / "x.sqlite").exists()


def test_on_all_interfaces_with_a_token_the_admin_api_requires_it(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "a-token-from-the-environment"
    process = subprocess.Popen(
        [sys.executable, "-m", "powerbi_standin", "--host", "0.0.0.0", "--port", str(port),
         "--db", str(tmp_path / "all.sqlite")],
        env={**os.environ, ADMIN_TOKEN_ENV: token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/_standin/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the stand-in did not answer"
            time.sleep(0.1)
        assert requests.get(f"{base}/_standin/datasets", timeout=10).status_code == 401
        assert requests.get(f"{base}/", timeout=10).status_code == 401
        authorized = requests.get(
            f"{base}/_standin/datasets", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert authorized.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
