"""Output names: each raw key has outputs of its own, whatever characters two keys differ in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from objectstore.output_names import SHORTENED_MARK, fit, fits, output_base
from objectstore.store import OutputKeys


def _names(key: str) -> dict[str, set[str]]:
    keys = OutputKeys.for_key(key)
    return {"processed": {keys.csv, keys.json, keys.report}, "quarantine": {keys.rejected, keys.original}}


def _assert_no_two_share_an_output(keys: list[str]) -> None:
    owners: dict[str, str] = {}
    for key in keys:
        for bucket, names in _names(key).items():
            for name in names:
                where = f"{bucket}/{name}"
                assert owners.setdefault(where, key) == key, f"{key!r} and {owners[where]!r} share {where}"


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
    _assert_no_two_share_an_output(keys)


@given(st.text(max_size=20))
def test_no_output_base_starts_with_an_underscore(key: str) -> None:
    """`_reports/` and the pipeline's own state (`_ivi/`) can never be an output's name."""
    assert not output_base(key).startswith("_")


def _store_takes(name: str) -> bool:
    """What SeaweedFS and MinIO take (measured: a 256-byte segment or a 1025-byte key is
    answered KeyTooLongError)."""
    return fits(name, prefix_bytes=0, suffix_bytes=0)


def _all_names(key: str) -> list[str]:
    return [name for names in _names(key).values() for name in names]


LONGEST_SEGMENT = "é" * 127  # 254 bytes, as long as a segment the store takes gets in two-byte letters


def test_a_key_as_long_as_the_store_takes_gets_outputs_it_takes_under_the_folders_people_look_in() -> None:
    keys = [
        f"vendas/{'a' * 251}.csv",  # 255 bytes: the .json and .rejected.csv names are longer
        f"vendas/{LONGEST_SEGMENT}",
        "/".join(["vendas", *(["b" * 250] * 4), "c" * (1024 - 7 - 4 * 251 - 4) + ".csv"]),  # 1024 bytes
        f"vendas/{'~' * 251}.csv",  # escaping doubles every `~`
        f"_{'_' * 253}/x.csv",
    ]
    for key in keys:
        assert _store_takes(key), key
        for name in _all_names(key):
            assert _store_takes(name), (key, name)
    shortened_json = OutputKeys.for_key(keys[0]).json
    assert shortened_json.startswith("vendas/aaaa") and SHORTENED_MARK in shortened_json
    assert OutputKeys.for_key(keys[0]).csv == keys[0]  # a name that fits keeps its readable form


def test_keys_that_differ_only_past_where_names_are_cut_keep_outputs_of_their_own() -> None:
    stem = "vendas/" + "x" * 240
    keys = [f"{stem}{end}" for end in ("1.csv", "2.csv", "1.CSV", "1.csv~", "~1.csv", "1~.csv", "é.csv")]
    _assert_no_two_share_an_output(keys)


_SEGMENT = st.one_of(
    st.lists(_KEY_CHARS, max_size=8).map("".join),
    st.builds(lambda char, count, end: char * count + end,
              st.sampled_from(["a", "~", "é", "_", "."]), st.integers(200, 260), st.sampled_from(["", ".csv", "~"])),
)
_LONG_KEYS = st.lists(_SEGMENT, min_size=1, max_size=6).map("/".join).filter(_store_takes)


@given(st.lists(_LONG_KEYS, min_size=2, max_size=5, unique=True))
def test_no_two_keys_share_an_output_and_the_store_takes_every_name(keys: list[str]) -> None:
    _assert_no_two_share_an_output(keys)
    for key in keys:
        for name in _all_names(key):
            assert _store_takes(name), (key, name)


def test_a_name_built_from_an_object_version_is_fitted_only_when_the_store_would_refuse_it() -> None:
    short = "raw/vendas/nov.csv@0123456789abcdef0123456789abcdef"
    assert fit(short, short, prefix_bytes=200) == short  # a cache key that fits is the one it always was
    room = 200
    for version in (f"raw/vendas/{'n' * 251}.csv@0123456789abcdef0123456789abcdef",  # a 288-byte segment
                    "raw/" + "/".join(["w" * 250] * 4) + "@0123456789abcdef0123456789abcdef"):
        name = fit(version, version, prefix_bytes=room)
        assert _store_takes("p" * (room - 1) + "/" + name), name
        other = version.replace("@0", "@1")
        assert name != fit(other, other, prefix_bytes=room)  # another version, another name
