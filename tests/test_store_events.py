"""Reading store webhook bodies (no server): every shape is read or ignored, never raised on."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.store_events import (
    IGNORED_KINDS,
    CreatedObject,
    Ignored,
    minio_outcomes,
    seaweedfs_outcomes,
    should_trigger,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(["Records", "EventName", "Key", "s3", "object", "bucket", "key", "name",
                        "eventName", "size", "eTag", "event_type", "message", "new_entry",
                        "attributes", "extended", "chunks", "is_directory", "file_size", "md5"])
STORE_LIKE = st.recursive(
    st.none() | st.integers() | st.text(max_size=10) | st.sampled_from(["create", "s3:ObjectCreated:Put", "/buckets/raw/a.csv"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), JSON) | st.dictionaries(KEYS, STORE_LIKE))
def test_any_json_object_is_read_or_ignored_never_raised_on(body: dict[str, Any]) -> None:
    for outcome in [*minio_outcomes(body), *seaweedfs_outcomes(body)]:
        assert isinstance(outcome, (CreatedObject, Ignored))
        if isinstance(outcome, CreatedObject):
            event = outcome.prefect_event()
            assert all(isinstance(v, str) for v in event["resource"].values())
            refusal = should_trigger(outcome, "raw")
            assert refusal is None or refusal.kind in IGNORED_KINDS
        else:  # the metrics' label: one of a few values, whatever the body says
            assert outcome.kind in IGNORED_KINDS


def test_seaweedfs_etag_comes_from_the_stored_s3_etag_then_the_md5() -> None:
    def body(entry: dict[str, Any]) -> dict[str, Any]:
        return {"event_type": "create", "key": "/buckets/raw/a.csv", "message": {"new_entry": entry}}

    stored = base64.b64encode(b"191a9b95dc0ec4b217b1dcb654c0df39-3").decode()
    md5 = base64.b64encode(bytes.fromhex("e5ebd4c02cefbe7955977c67ada242b7")).decode()
    [multipart] = seaweedfs_outcomes(body({"extended": {"Seaweed-X-Amz-ETag": stored}}))
    [plain] = seaweedfs_outcomes(body({"attributes": {"md5": md5, "file_size": 8}}))
    [empty] = seaweedfs_outcomes(body({"attributes": {"mtime": 1}}))
    assert isinstance(multipart, CreatedObject) and multipart.etag == "191a9b95dc0ec4b217b1dcb654c0df39-3"
    assert isinstance(plain, CreatedObject) and (plain.etag, plain.size) == ("e5ebd4c02cefbe7955977c67ada242b7", "8")
    assert isinstance(empty, CreatedObject) and (empty.etag, empty.size) == ("", "0")


def test_only_csv_objects_of_the_raw_bucket_outside_uploads_trigger() -> None:
    def obj(bucket: str, key: str) -> CreatedObject:
        return CreatedObject("minio", bucket, key, "e", "1", "s")

    assert should_trigger(obj("raw", "a/B.CSV"), "raw") is None
    assert should_trigger(obj("raw", ".uploads/x/a.csv"), "raw") is not None
    assert should_trigger(obj("processed", "a.csv"), "raw") is not None
    assert should_trigger(obj("raw", "a.csv.gz"), "raw") is not None
    assert should_trigger(obj("raw", "dir.csv/"), "raw") is not None


def test_event_ids_are_stable_per_delivery_and_differ_per_version() -> None:
    first = CreatedObject("minio", "raw", "a.csv", "etag1", "1", "seq1")
    assert first.event_id() == CreatedObject("minio", "raw", "a.csv", "etag1", "1", "seq1").event_id()
    assert first.event_id() != CreatedObject("minio", "raw", "a.csv", "etag2", "1", "seq2").event_id()
