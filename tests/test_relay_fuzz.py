"""The relay fuzzed on the live stack with bodies written from the stores' own description.

The bodies are not generated from the relay's OpenAPI document (which would only check the
relay against itself) but from a hand-written description of what the stores post
(design.md "Facts", deployments/store_events.py' docstring):

- MinIO: `{"EventName", "Key": "<bucket>/<key>", "Records": [{"eventName", "s3": {"bucket":
  {"name"}, "object": {"key" (URL-encoded), "size" (absent for 0 bytes), "eTag", "sequencer"}},
  ...}]}`; deletes carry no size or eTag; tagging changes are `s3:ObjectCreated:PutTagging`.
- SeaweedFS' filer: `{"event_type": "create"|"update"|"delete", "key": "/buckets/<bucket>/<key>"
  (raw), "message": {"new_entry"|"old_entry": {"name", "is_directory", "attributes": {...},
  "chunks": [...], "extended": {"Seaweed-X-Amz-ETag": base64}}}}`.

Every body class has one answer, decided here, never "whatever it says" (no 5xx is accepted:
the stack's Prefect server is up):

- a creation of a `.csv` of the raw bucket: 200, the key posted to Prefect, and (the triggers
  are on) a process_object run appears for it;
- what the relay must ignore (other bucket, not `.csv`, folder, multipart part, delete,
  tagging): 200, nothing posted, and no run appears for those keys while the module watches;
- a store body with a member removed, retyped or replaced (a store version we do not know):
  200 with a well-formed answer;
- a body that is not a JSON object (truncated, not JSON, another JSON value, NaN, a lone
  surrogate): 400; a body over the size limit: 413; a missing or wrong token: 401.

The relay's log shows no unhandled exception afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivi.settings import Settings
from tests.fault_support import UPLOAD_TRIGGERS, poll
from tests.pipeline_support import flow_runs_for_key
from tests.stack_support import assert_stays, auth_headers, prefect_request

pytestmark = pytest.mark.services

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=IN_CI,
        database=None if IN_CI else settings.default.database,
        suppress_health_check=list(HealthCheck),
    )


ROUTES = {"minio": "/minio/events", "seaweedfs": "/seaweedfs/events"}
RAW = "raw"  # the stack's raw bucket (checked in the first test)
RUN = f"fuzz-{uuid.uuid4().hex[:8]}"  # this module's keys: no other test names them
NO_RUN_SECONDS = 10.0  # how long the ignored keys are watched for a run (a trigger fires in ~0.1 s)

created_keys: list[str] = []  # keys the relay posted: each must get a run
ignored_keys: list[str] = []  # keys the relay must ignore: none may get a run


@pytest.fixture(scope="module")
def relay_log_offset(stack: Settings) -> int:
    return (stack.data_dir / "logs" / "relay.log").stat().st_size


# --- the stores' bodies, as the stores describe them ---------------------------------------------
SEGMENT = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/"), min_size=1, max_size=12)
HEX = "0123456789abcdef"
MD5_HEX = st.text(HEX, min_size=32, max_size=32)
ETAG = st.one_of(MD5_HEX, st.tuples(MD5_HEX, st.integers(2, 999)).map(lambda t: f"{t[0]}-{t[1]}"))
SIZE = st.integers(0, 5 * 2**30)
NANOS = st.integers(1_600_000_000 * 10**9, 1_900_000_000 * 10**9)


def key_under(kind: str, suffix: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`<RUN>/<kind>/<segments><suffix>`: an object key of this module (spaces, accents, `+`...)."""
    return st.builds(lambda parts, end: f"{RUN}/{kind}/{'/'.join(parts)}{end}",
                     st.lists(SEGMENT, min_size=1, max_size=3), suffix)


CSV_SUFFIX = st.sampled_from([".csv", ".CSV", ".Csv"])
OTHER_SUFFIX = st.sampled_from(["", ".txt", ".csv.gz", ".json", ".csvx", ".parquet", ".csv.tmp"])
CREATED_EVENTS = ["s3:ObjectCreated:Put", "s3:ObjectCreated:Post", "s3:ObjectCreated:Copy",
                  "s3:ObjectCreated:CompleteMultipartUpload"]
REMOVED_EVENTS = ["s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"]
METADATA_EVENTS = ["s3:ObjectCreated:PutTagging", "s3:ObjectCreated:DeleteTagging",
                   "s3:ObjectCreated:PutRetention", "s3:ObjectCreated:PutLegalHold"]


@st.composite
def minio_body(draw: st.DrawFn, bucket: str, key: str, event: str) -> dict[str, Any]:
    """One MinIO webhook body (one record), with the members MinIO sends."""
    encode = draw(st.sampled_from([lambda k: quote_plus(k, safe="/"), lambda k: quote_plus(k, safe="")]))
    obj: dict[str, Any] = {"key": encode(key), "sequencer": draw(st.text(HEX.upper(), min_size=16, max_size=16))}
    if not event.startswith("s3:ObjectRemoved:"):  # deletes carry no size or eTag
        size = draw(SIZE)
        if size:  # a 0-byte object has no size key
            obj["size"] = size
        obj["eTag"] = draw(ETAG)
        obj["contentType"] = draw(st.sampled_from(["text/csv", "application/octet-stream"]))
        obj["userMetadata"] = {"content-type": obj["contentType"]}
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2026-12-07T10:00:00.000Z",
        "eventName": event,
        "userIdentity": {"principalId": "ivi"},
        "requestParameters": {"principalId": "ivi", "region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-id-2": "dd9025", "x-amz-request-id": "17A2B", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "ivi"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7"},
    }
    return {"EventName": event, "Key": f"{bucket}/{key}", "Records": [record]}


@st.composite
def seaweed_entry(draw: st.DrawFn, name: str, directory: bool = False) -> dict[str, Any]:
    """A filer entry as SeaweedFS' webhook marshals it (Go's JSON of filer_pb.Entry)."""
    mtime = draw(st.integers(1_600_000_000, 1_900_000_000))
    attributes: dict[str, Any] = {"mtime": mtime, "file_mode": 0o20000000755 if directory else 0o660,
                                  "crtime": mtime, "inode": draw(st.integers(1, 2**63))}
    entry: dict[str, Any] = {"name": name, "attributes": attributes}
    if directory:
        entry["is_directory"] = True
        return entry
    size = draw(SIZE)
    if size:  # protobuf JSON leaves zeros out
        attributes["file_size"] = size
    content = draw(st.binary(max_size=16))
    attributes["md5"] = base64.b64encode(hashlib.md5(content).digest()).decode()
    entry["chunks"] = [{"size": size, "modified_ts_ns": draw(NANOS), "e_tag": attributes["md5"],
                        "fid": {"volume_id": 1, "file_key": draw(st.integers(1, 10**6)), "cookie": 1}}]
    extended = {"Seaweed-X-Amz-Owner": base64.b64encode(b"ivi").decode()}
    if draw(st.booleans()):  # S3 uploads store the ETag text, base64 like every extended value
        extended["Seaweed-X-Amz-ETag"] = base64.b64encode(draw(ETAG).encode()).decode()
    entry["extended"] = extended
    return entry


@st.composite
def seaweed_body(draw: st.DrawFn, bucket: str, key: str, event_type: str, directory: bool = False) -> dict[str, Any]:
    """One SeaweedFS filer webhook body: create/update carry the new entry, delete the old one."""
    name = key.rstrip("/").rsplit("/", 1)[-1]
    entry = draw(seaweed_entry(name, directory))
    parent = f"/buckets/{bucket}/{key}".rsplit("/", 1)[0]
    if event_type == "delete":
        message: dict[str, Any] = {"old_entry": entry, "delete_chunks": True}
    elif event_type == "update":
        message = {"old_entry": draw(seaweed_entry(name)), "new_entry": entry, "delete_chunks": True,
                   "new_parent_path": parent}
    else:
        message = {"new_entry": entry, "new_parent_path": parent}
    message["signatures"] = [draw(st.integers(-(2**31), 2**31 - 1))]
    return {"event_type": event_type, "key": f"/buckets/{bucket}/{key}", "message": message}


@st.composite
def created(draw: st.DrawFn, kind: str = "run") -> tuple[str, dict[str, Any], str]:
    """(route, body, key): a store telling that a `.csv` of the raw bucket was written."""
    key = draw(key_under(kind, CSV_SUFFIX))
    if draw(st.booleans()):
        return ROUTES["minio"], draw(minio_body(RAW, key, draw(st.sampled_from(CREATED_EVENTS)))), key
    return ROUTES["seaweedfs"], draw(seaweed_body(RAW, key, draw(st.sampled_from(["create", "update"])))), key


@st.composite
def to_ignore(draw: st.DrawFn, kind: str = "skip") -> tuple[str, dict[str, Any], str, str]:
    """(route, body, key, why): a store body the relay must acknowledge and not post."""
    why = draw(st.sampled_from(["other bucket", "not csv", "folder", "multipart part", "delete", "tagging"]))
    store = draw(st.sampled_from(["minio", "seaweedfs"]))
    if why == "tagging":
        store = "minio"  # SeaweedFS has no such event
    bucket, directory, event = RAW, False, "create"
    key = draw(key_under(kind, CSV_SUFFIX))
    if why == "other bucket":
        bucket = draw(st.sampled_from(["processed", "quarantine", "rawdata", "Raw"]))
    elif why == "not csv":
        key = draw(key_under(kind, OTHER_SUFFIX))
    elif why == "folder":
        directory = store == "seaweedfs"  # SeaweedFS marks it; MinIO names it with a final "/"
        key = key if directory else key + "/"
    elif why == "multipart part":
        store = "seaweedfs"  # SeaweedFS keeps the parts of a multipart upload under .uploads/
        upload_id = draw(st.text(HEX, min_size=8, max_size=32))
        part = draw(st.sampled_from([f"0001_{upload_id[:4]}.part", f"{upload_id[:4]}.csv"]))
        key = f".uploads/{RUN}-{kind}-{upload_id}/{part}"
    elif why == "delete":
        event = "delete"
    if store == "minio":
        name = {"delete": draw(st.sampled_from(REMOVED_EVENTS)), "create": draw(st.sampled_from(CREATED_EVENTS))}[event]
        if why == "tagging":
            name = draw(st.sampled_from(METADATA_EVENTS))
        return ROUTES["minio"], draw(minio_body(bucket, key, name)), key, why
    event_type = event if event == "delete" else draw(st.sampled_from(["create", "update"]))
    return ROUTES["seaweedfs"], draw(seaweed_body(bucket, key, event_type, directory)), key, why


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A store body with one member removed, retyped or added: a store version we do not know."""
    if draw(st.booleans()):
        route, body, _key = draw(created("mut"))
    else:
        route, body, _key, _why = draw(to_ignore("mut"))
    paths: list[tuple[Any, Any]] = []  # (container, member) of every member, depth first

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for member, child in list(items):
            paths.append((node, member))
            walk(child)

    walk(body)
    container, member = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["remove", "replace", "add"]))
    if action == "remove":
        del container[member]
    elif action == "replace":
        container[member] = draw(JSON_VALUE)
    elif isinstance(container, dict):
        container[draw(st.text(max_size=10))] = draw(JSON_VALUE)
    else:
        container.append(draw(JSON_VALUE))
    return route, body


@st.composite
def not_a_json_object(draw: st.DrawFn) -> tuple[str, bytes]:
    """(route, bytes): what no store sends, which the relay documents as 400."""
    route = draw(st.sampled_from(sorted(ROUTES.values())))
    valid = json.dumps(draw(created("bad"))[1]).encode()
    kind = draw(st.sampled_from(["truncated", "not json", "json value", "nan", "lone surrogate", "form"]))
    if kind == "truncated":  # a strict prefix of a JSON object is never JSON
        return route, valid[: draw(st.integers(1, len(valid) - 1))]
    if kind == "not json":  # starts with a byte UTF-8 never starts with
        return route, b"\x80" + draw(st.binary(max_size=64)).replace(b"\x00", b"")
    if kind == "json value":
        value = draw(st.lists(JSON_VALUE, max_size=3) | st.integers() | st.text(max_size=20) | st.none() | st.booleans())
        return route, json.dumps(value).encode()
    if kind == "nan":
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return route, valid.replace(b'"Records": [', f'"size": {constant}, "Records": ['.encode(), 1).replace(
            b'"event_type": ', f'"size": {constant}, "event_type": '.encode(), 1)
    if kind == "lone surrogate":
        surrogate = draw(st.characters(categories=["Cs"]))
        return route, json.dumps({"Key": f"raw/{RUN}/{surrogate}.csv", "key": f"/buckets/raw/{surrogate}.csv"}).encode()
    return route, quote(json.dumps(draw(created("bad"))[1])).encode()  # form-encoded, not JSON


# --- the relay's answers, as it documents them ---------------------------------------------------
def answer_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON answer, after checking the status and the documented shape of that status."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    if status == 200:
        assert set(body) == {"posted", "dropped", "ignored"}, body
        for item in body["posted"] + body["dropped"]:
            assert set(item) == {"key", "event_id"} and isinstance(item["key"], str), item
            uuid.UUID(item["event_id"])
        for item in body["ignored"]:
            assert set(item) == {"key", "reason"} and item["reason"], item
    else:
        assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    return dict(body)


def post(stack: Settings, route: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{stack.relay_url}{route}", headers=auth_headers(stack) if headers is None else headers,
                      timeout=60, **kwargs)


def test_the_stack_runs_with_its_upload_trigger_on(stack: Settings, relay_log_offset: int) -> None:
    assert stack.raw_bucket == RAW
    automations = prefect_request("POST", f"{stack.prefect_api_url}/automations/filter", json={}).json()
    assert sorted((a["name"], a["enabled"]) for a in automations if a["name"] in UPLOAD_TRIGGERS) == sorted(
        (name, True) for name in UPLOAD_TRIGGERS
    )


@fuzz(15)
@given(body=created())
def test_a_csv_created_in_the_raw_bucket_is_posted_to_prefect(stack: Settings, body: tuple[str, dict[str, Any], str]) -> None:
    route, document, key = body
    answer = answer_of(post(stack, route, json=document), 200)
    assert [item["key"] for item in answer["posted"]] == [key], answer
    assert answer["dropped"] == [] and answer["ignored"] == [], answer
    created_keys.append(key)


@fuzz(40)
@given(body=to_ignore())
def test_what_the_relay_must_ignore_is_acknowledged_and_not_posted(
    stack: Settings, body: tuple[str, dict[str, Any], str, str]
) -> None:
    route, document, key, why = body
    answer = answer_of(post(stack, route, json=document), 200)
    assert answer["posted"] == [] and answer["dropped"] == [], (why, answer)
    assert len(answer["ignored"]) == 1, (why, answer)
    ignored_keys.append(key)


@fuzz(40)
@given(body=mutated())
def test_a_store_body_with_a_member_removed_retyped_or_added_is_acknowledged(
    stack: Settings, body: tuple[str, dict[str, Any]]
) -> None:
    route, document = body
    answer_of(post(stack, route, content=json.dumps(document).encode(),
                   headers={**auth_headers(stack), "Content-Type": "application/json"}), 200)


@fuzz(40)
@given(body=not_a_json_object())
def test_a_body_that_is_not_a_json_object_is_refused_with_400(stack: Settings, body: tuple[str, bytes]) -> None:
    route, content = body
    answer_of(post(stack, route, content=content, headers={**auth_headers(stack), "Content-Type": "application/json"}), 400)


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@fuzz(30)
@given(route=st.sampled_from(sorted(ROUTES.values())), authorization=st.none() | st.one_of(
    HEADER_TEXT,
    st.builds(lambda scheme, credentials: f"{scheme} {credentials}", st.sampled_from(["Bearer", "Basic", "Token"]), HEADER_TEXT),
).map(str.strip))
def test_without_the_right_token_every_event_route_answers_401(stack: Settings, route: str, authorization: str | None) -> None:
    token = stack.webhook_token.get_secret_value()
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip() == token:
        return  # hypothesis did find the token: not this test's case
    headers = {} if authorization is None else {"Authorization": authorization}
    document = {"EventName": "s3:ObjectCreated:Put", "Records": []}
    response = post(stack, route, json=document, headers=headers)
    answer_of(response, 401)
    assert token not in response.text
    assert httpx.head(f"{stack.relay_url}{route}", headers=headers, timeout=30).status_code == 401


@fuzz(10)
@given(route=st.sampled_from(sorted(ROUTES.values())), edit=st.sampled_from(["cut", "append", "flip", "case"]),
       where=st.integers(0, 10**6))
def test_a_token_one_edit_away_answers_401(stack: Settings, route: str, edit: str, where: int) -> None:
    token = stack.webhook_token.get_secret_value()
    at = where % len(token)
    wrong = {"cut": token[: max(at, 1)], "append": token + "x", "flip": token[:at] + chr(ord(token[at]) ^ 1) + token[at + 1:],
             "case": token.swapcase()}[edit]
    if wrong == token:
        return  # a token without letters has no case to swap
    answer_of(post(stack, route, json={}, headers={"Authorization": f"Bearer {wrong}"}), 401)


def test_the_right_token_the_liveness_checks_and_the_size_limit(stack: Settings) -> None:
    for route in ROUTES.values():
        assert httpx.head(f"{stack.relay_url}{route}", headers=auth_headers(stack), timeout=30).status_code == 200
        empty = answer_of(post(stack, route, content=b""), 200)  # older MinIO's liveness POST
        assert empty["posted"] == [] and len(empty["ignored"]) == 1
        padding = "x" * stack.relay_max_body_bytes  # a JSON object one padding over the limit
        answer_of(post(stack, route, content=json.dumps({"Records": [], "pad": padding}).encode()), 413)
        answer_of(post(stack, route, content=b"{" + b" " * (stack.relay_max_body_bytes + 1) + b"}"), 413)


def test_every_posted_csv_got_a_run_and_nothing_ignored_did(stack: Settings, relay_log_offset: int) -> None:
    """With the upload trigger on: the relay's ignoring is what kept those keys from a run."""
    assert created_keys and ignored_keys
    test_the_stack_runs_with_its_upload_trigger_on(stack, relay_log_offset)
    for key in created_keys:  # the positive control: an event posted does start a run
        poll(lambda key=key: flow_runs_for_key(stack, key), f"a process_object run for {key!r}", timeout=90, interval=0.5)
    watched = set(ignored_keys)

    def no_run_for_an_ignored_key() -> bool:
        runs = prefect_request(
            "POST", f"{stack.prefect_api_url}/flow_runs/filter",
            json={"flows": {"name": {"any_": ["process_object"]}}, "limit": 200, "sort": "EXPECTED_START_TIME_DESC"},
        ).json()
        started = [run["parameters"].get("key") for run in runs if run["parameters"].get("key") in watched]
        assert not started, f"runs started for keys the relay had to ignore: {started}"
        return True

    assert_stays(no_run_for_an_ignored_key, seconds=NO_RUN_SECONDS, what="a run for an ignored key")

    with Path(stack.data_dir / "logs" / "relay.log").open("rb") as handle:
        handle.seek(relay_log_offset)
        written = handle.read().decode(errors="replace")
    assert "Exception in ASGI application" not in written
    assert "Traceback" not in written
