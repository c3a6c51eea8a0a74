"""Data contracts: the TOML files in contracts/ read into typed objects.

A contract says *what* a dataset is (columns, types, value rules, its Power BI table); the
engine in this package says *how* any contract is parsed, checked and cleaned. Adding a
dataset means adding one file to contracts/ and nothing else.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from processing.errors import ContractError

ColumnType = Literal["int", "decimal", "date", "string", "boolean"]

#: Power BI push-dataset data types, per contract column type.
POWERBI_TYPES: dict[str, str] = {
    "int": "Int64",
    "decimal": "Double",
    "date": "DateTime",
    "string": "String",
    "boolean": "Boolean",
}

DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_name(raw: str) -> str:
    """Header or value key as the contracts spell it: `" Preço Unitário "` -> `preco_unitario`."""
    return _NON_ALNUM.sub("_", fold_accents(raw.strip().lower())).strip("_")


def fold_accents(text: str) -> str:
    """Drop combining marks so that `Viúvo` and `viuvo` compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract."""

    name: str
    type: ColumnType
    required: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[object, ...] = ()
    aliases: dict[str, object] = field(default_factory=dict)
    message: str | None = None
    description: str = ""
    # Personal data (LGPD): the values are masked wherever a copy leaves the store (Prefect
    # artifacts, logs, reports); the quarantine file keeps them, where they get fixed.
    pii: bool = False

    @property
    def powerbi_type(self) -> str:
        return POWERBI_TYPES[self.type]

    def canonical_values(self) -> dict[str, str]:
        """Map from a lower-cased value to its canonical spelling, before type parsing.

        Allowed values map to themselves (so `sp` becomes `SP`), aliases to their target;
        each key is there with and without its accents, so that matching a value needs only
        lower-casing it (much cheaper than folding accents on every row).
        """
        pairs = [(value, value) for value in self.allowed] + list(self.aliases.items())
        mapping: dict[str, str] = {}
        for key, target in pairs:
            lowered = str(key).strip().lower()
            mapping[lowered] = str(target)
            mapping[fold_accents(lowered)] = str(target)
        return mapping


@dataclass(frozen=True)
class RowCheck:
    """A rule across columns, written as a polars SQL expression over the typed row."""

    name: str
    column: str
    expression: str
    message: str


@dataclass(frozen=True)
class Contract:
    name: str
    columns: tuple[ColumnSpec, ...]
    row_checks: tuple[RowCheck, ...] = ()
    powerbi_table: str | None = None
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [column.name for column in self.columns if column.required]

    @property
    def pii_columns(self) -> frozenset[str]:
        """The columns marked `pii = true` (personal data)."""
        return frozenset(column.name for column in self.columns if column.pii)

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


_COLUMN_KEYS = {f for f in ColumnSpec.__dataclass_fields__}


def _column_from_toml(entry: dict[str, object], source: Path) -> ColumnSpec:
    unknown = set(entry) - _COLUMN_KEYS
    if unknown:
        raise ContractError(f"{source.name}: unknown column keys {sorted(unknown)}")
    if entry.get("type") not in POWERBI_TYPES:
        raise ContractError(
            f"{source.name}: column {entry.get('name')!r} has type {entry.get('type')!r}; "
            f"expected one of {sorted(POWERBI_TYPES)}"
        )
    if not isinstance(entry.get("pii", False), bool):
        raise ContractError(
            f"{source.name}: column {entry.get('name')!r} has pii = {entry['pii']!r}; "
            "expected true or false"
        )
    values = dict(entry)
    values["allowed"] = tuple(values.get("allowed", ()))  # type: ignore[arg-type]
    values["aliases"] = dict(values.get("aliases", {}))  # type: ignore[call-overload]
    return ColumnSpec(**values)  # type: ignore[arg-type]


def parse_contract(path: Path) -> Contract:
    """Read one contract file; errors name the file and the offending key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ContractError(f"{path.name}: {error}") from error
    columns = tuple(_column_from_toml(entry, path) for entry in data.get("columns", []))
    if not columns:
        raise ContractError(f"{path.name}: a contract needs at least one column")
    names = [column.name for column in columns]
    if len(set(names)) != len(names) or any(normalise_name(n) != n for n in names):
        raise ContractError(f"{path.name}: column names must be unique and normalised: {names}")
    row_checks = tuple(RowCheck(**entry) for entry in data.get("row_checks", []))
    for check in row_checks:
        if check.column not in names:
            raise ContractError(f"{path.name}: row check {check.name!r} names unknown column")
    powerbi = data.get("powerbi", {})
    return Contract(
        name=data.get("name", path.stem),
        columns=columns,
        row_checks=row_checks,
        powerbi_table=powerbi.get("table"),
        description=data.get("description", ""),
    )


def available_contracts(directory: Path = DEFAULT_CONTRACTS_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.toml"))


def load_contract(name: str, directory: Path = DEFAULT_CONTRACTS_DIR) -> Contract:
    """The contract called `name`; an unknown name lists the known ones."""
    path = directory / f"{name}.toml"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        known = ", ".join(available_contracts(directory)) or "none"
        raise ContractError(f"unknown contract {name!r} (known: {known})")
    return parse_contract(path)


def contract_for_key(key: str) -> str:
    """Which contract an object key belongs to: its first path segment (`vendas/x.csv`)."""
    first = key.lstrip("/").split("/", 1)[0]
    return normalise_name(first)
