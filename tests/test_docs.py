"""The docs say what the code does: links resolve, every setting is in the README's table,
and every `ivi` command they show exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ivi.cli import build_parser
from blocks.settings import ENV_PREFIX, POWERBI_CONTRACT_SETTINGS
from ivi.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# `ivi` as a command: at the start of a line or of a code span, after a shell separator or a
# prompt, optionally with a path (`.venv/bin/ivi`); not `-n ivi`, `mini-pipeline-ivi` or `ivi/`.
_IVI_COMMAND = re.compile(
    r"(?:^[ \t]*|`|&&[ \t]*|;[ \t]*|\|[ \t]*|\$[ \t]+)"  # where a command starts
    r"(?:[\w.-]*/)*ivi[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?",
    re.M,
)
_TABLE_VARIABLE = re.compile(r"^\|\s*`(IVI_[A-Z0-9_<>]+)`\s*\|", re.M)


def _without_code_blocks(text: str) -> str:
    return _FENCE.sub("", text)


def _section(text: str, title: str) -> str:
    """The body of the `## title` section (up to the next `## ` heading)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no `## {title}` section"
    return match.group(1)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_without_code_blocks(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, in-page anchors
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"


def test_the_readme_configuration_table_lists_every_setting_and_no_other() -> None:
    table = _section(README.read_text(encoding="utf-8"), "Configuration")
    listed = _TABLE_VARIABLE.findall(table)
    per_contract = "powerbi_contract_settings"  # filled from IVI_POWERBI_<CONTRACT>_<SETTING>
    expected = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields if name != per_contract}
    expected |= {f"{ENV_PREFIX}POWERBI_<CONTRACT>_{setting.upper()}" for setting in POWERBI_CONTRACT_SETTINGS}
    assert per_contract in Settings.model_fields
    assert sorted(set(listed)) == sorted(listed), "a variable is listed twice"
    assert set(listed) == expected, (
        f"missing from the table: {sorted(expected - set(listed))}; "
        f"not settings: {sorted(set(listed) - expected)}"
    )


def test_the_readme_names_make_demo_and_make_test_as_the_two_commands() -> None:
    section = _section(README.read_text(encoding="utf-8"), "The two commands")
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.S)
    assert block, "the section shows its commands in a code block"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_every_ivi_command_the_docs_show_exists() -> None:
    commands = _subcommands(build_parser())
    unknown = []
    for doc in DOCS:
        for first, second in _IVI_COMMAND.findall(doc.read_text(encoding="utf-8")):
            nested = _subcommands(commands[first]) if first in commands else {}
            if first not in commands or (nested and second not in nested):
                unknown.append(f"{doc.relative_to(ROOT)}: ivi {first} {second}".rstrip())
    assert not unknown, f"commands the parser does not have: {unknown}"


def test_the_command_pattern_finds_commands_and_only_commands() -> None:
    """The check above is only as good as its pattern: it sees these, and not those."""
    text = (
        "run `ivi replay vendas/x.csv` then\n"
        ".venv/bin/ivi powerbi create-dataset --contract vendas\n"
        "ivi down && ivi up\n"
        "kubectl -n ivi get pods, mini-pipeline-ivi image, ivi/settings.py, the `ivi` command\n"
    )
    assert _IVI_COMMAND.findall(text) == [
        ("replay", "vendas"), ("powerbi", "create-dataset"), ("down", ""), ("up", ""),
    ]
