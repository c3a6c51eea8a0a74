"""Output names: each raw key has outputs of its own, whatever characters two keys differ in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from objectstore.store import OutputKeys, output_base


def _names(key: str) -> dict[str, set[str]]:
    keys = OutputKeys.for_key(key)
    return {"processed": {keys.csv, keys.json, keys.report}, "quarantine": {keys.rejected, keys.original}}


def test_a_csv_key_keeps_the_names_people_expect() -> None:
    keys = OutputKeys.for_key("vendas/2026/nov.csv")
    assert (keys.csv, keys.json, keys.rejected, keys.report) == (
        "vendas/2026/nov.csv", "vendas/2026/nov.json", "vendas/2026/nov.rejected.csv",
        "_reports/vendas/2026/nov.json",
    )
    assert keys.original == "_rejected_files/vendas/2026/nov.csv"


def test_case_and_extension_variants_side_by_side_share_no_output() -> None:
    variants = ["vendas/a.csv", "vendas/a.CSV", "vendas/a.csv.gz", "vendas/a", "vendas/a~.csv",
                "vendas/a.CSV.csv", "_reports/vendas/a.csv", "vendas/a.rejected.csv"]
    seen: dict[str, str] = {}
    for key in variants:
        for bucket, names in _names(key).items():
            for name in names:
                assert f"{bucket}/{name}" not in seen, f"{key} and {seen[f'{bucket}/{name}']} share {name}"
                seen[f"{bucket}/{name}"] = key


_KEY_CHARS = st.sampled_from(list("aA_~./-é ") + [".csv", ".CSV", ".gz", "_reports/", "~_", "/"])


@given(st.lists(st.lists(_KEY_CHARS, max_size=8).map("".join), min_size=2, max_size=6, unique=True))
def test_no_two_keys_ever_share_an_output(keys: list[str]) -> None:
    owners: dict[str, str] = {}
    for key in keys:
        for bucket, names in _names(key).items():
            for name in names:
                where = f"{bucket}/{name}"
                assert owners.setdefault(where, key) == key, f"{key!r} and {owners[where]!r} share {where}"


@given(st.text(max_size=20))
def test_no_output_base_starts_with_an_underscore(key: str) -> None:
    """`_reports/` and the pipeline's own state (`_ivi/`) can never be an output's name."""
    assert not output_base(key).startswith("_")
