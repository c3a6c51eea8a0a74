"""Production code checks its own invariants with exceptions that say what went wrong, not
with `assert` (which `python -O` strips)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from powerbi.batches import _batches
from tests.paths import REPO_ROOT
from processing.errors import SourceStateError
from processing.source import TextSource

PRODUCTION_PACKAGES = ("ivi", "flows", "blocks", "deployments", "processing", "powerbi_standin",
                       "objectstore", "relay", "powerbi")
ASSERT_STATEMENT = re.compile(r"^\s*assert\b", re.MULTILINE)


def test_no_production_module_guards_with_assert() -> None:
    found = [
        f"{path.relative_to(REPO_ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
        for package in PRODUCTION_PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for match in ASSERT_STATEMENT.finditer(text)
    ]
    assert found == []


def test_reading_a_source_before_opening_it_raises_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    source = TextSource(path)
    with pytest.raises(SourceStateError, match="before open"):
        source.require_header()
    with pytest.raises(SourceStateError, match="before open"):
        next(source.chunks())
    with source:
        assert source.require_header().names == ["a", "b"]


def test_the_latin1_fallback_refuses_an_encoding_error() -> None:
    with pytest.raises(TypeError, match="decoding errors only"):
        "é".encode("ascii", errors="ivi-latin1")
    assert b"\x81".decode("cp1252", errors="ivi-latin1") == "\x81"


def test_batching_something_that_is_not_a_segment_raises_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected a _Segment, got dict"):
        list(_batches([{"rows": []}], max_rows=10, max_bytes=1000))  # type: ignore[list-item]
