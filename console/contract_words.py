"""A contract in plain words, for the people who fill the files rather than write the TOML."""

from __future__ import annotations

from dataclasses import dataclass

from console.i18n import Translate
from processing.contract import ColumnSpec, Contract


@dataclass(frozen=True)
class ColumnWords:
    name: str
    type: str
    rules: list[str]
    description: str


def _limit(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def column_words(column: ColumnSpec, t: Translate) -> ColumnWords:
    rules = [t("rule.required") if column.required else t("rule.optional")]
    if column.unique:
        rules.append(t("rule.unique"))
    if column.min is not None:
        rules.append(t("rule.min", value=_limit(column.min)))
    if column.max is not None:
        rules.append(t("rule.max", value=_limit(column.max)))
    if column.allowed:
        rules.append(t("rule.allowed", values=", ".join(str(v) for v in column.allowed)))
    if column.aliases:
        rules.append(t("rule.aliases", values=", ".join(f"{k} → {v}" for k, v in column.aliases.items())))
    if column.format:
        rules.append(t("rule.format", values=", ".join(column.format)))
    if column.timezone:
        rules.append(t("rule.timezone", value=column.timezone))
    if column.pii:
        rules.append(t("rule.pii"))
    if column.message:
        rules.append(t("rule.message", value=column.message))
    return ColumnWords(column.name, t(f"type.{column.type}"), rules, column.description)


def contract_words(contract: Contract, t: Translate) -> list[ColumnWords]:
    return [column_words(column, t) for column in contract.columns]
