"""Data contracts: contract TOML read into typed objects.

A contract says *what* a dataset is (columns, types, value rules, its Power BI table); the
engine in this package says *how* any contract is parsed, checked and cleaned. Adding a
dataset means adding one contract and nothing else: a file in a contracts directory (the
repository's `contracts/` by default), or one published to the object store, which the flows
fetch and hand to `parse_contract_text` (this package talks to no store).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processing.errors import ContractError

ColumnType = Literal["int", "decimal", "date", "datetime", "string", "boolean"]
Limit = float | date | datetime  # a `min` / `max`: a number, or a date or time for those types

#: Power BI push-dataset data types, per contract column type.
POWERBI_TYPES: dict[str, str] = {
    "int": "Int64",
    "decimal": "Double",
    "date": "DateTime",
    "datetime": "DateTime",
    "string": "String",
    "boolean": "Boolean",
}

#: The repository's `contracts/`: where a name is looked up when no other directory is given
#: (the CLI; the flows pass the directory of block `ivi-pipeline`).
DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
CONTRACT_NAME = re.compile(r"[a-z0-9_]+")
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
    min: Limit | None = None
    max: Limit | None = None
    allowed: tuple[object, ...] = ()
    aliases: dict[str, object] = field(default_factory=dict)
    message: str | None = None
    description: str = ""
    # Personal data (LGPD): the values are masked wherever a copy leaves the store (Prefect
    # artifacts, logs, reports); the quarantine file keeps them, where they get fixed.
    pii: bool = False
    # date and datetime only: strftime formats tried in order (empty: the default set, see
    # docs/contracts.md), and for datetime the IANA zone naive values are written in
    format: tuple[str, ...] = ()
    timezone: str | None = None

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


def _column_from_toml(entry: dict[str, object], source: str) -> ColumnSpec:
    unknown = set(entry) - _COLUMN_KEYS
    if unknown:
        raise ContractError(f"{source}: unknown column keys {sorted(unknown)}")
    if entry.get("type") not in POWERBI_TYPES:
        raise ContractError(
            f"{source}: column {entry.get('name')!r} has type {entry.get('type')!r}; "
            f"expected one of {sorted(POWERBI_TYPES)}"
        )
    if not isinstance(entry.get("pii", False), bool):
        raise ContractError(
            f"{source}: column {entry.get('name')!r} has pii = {entry['pii']!r}; "
            "expected true or false"
        )
    values = dict(entry)
    _check_time_keys(values, source)
    values["allowed"] = tuple(values.get("allowed", ()))  # type: ignore[arg-type]
    values["aliases"] = dict(values.get("aliases", {}))  # type: ignore[call-overload]
    return ColumnSpec(**values)  # type: ignore[arg-type]


def _check_time_keys(values: dict[str, object], source: str) -> None:
    """`format`, `timezone` and date/time `min`/`max` checked and read, in place."""
    name, kind = values.get("name"), values.get("type")
    where = f"{source}: column {name!r}"
    if "format" in values:
        formats = values["format"]
        if kind not in ("date", "datetime"):
            raise ContractError(f"{where}: `format` is for date and datetime columns only")
        if isinstance(formats, str):
            formats = [formats]
        if (
            not isinstance(formats, list)
            or not formats
            or not all(isinstance(f, str) and "%" in f for f in formats)
        ):
            raise ContractError(
                f"{where}: `format` must be a strftime format (`%d/%m/%Y`) or a list of them"
            )
        values["format"] = tuple(formats)
    timezone = values.get("timezone")
    if timezone is not None:
        if kind != "datetime":
            raise ContractError(f"{where}: `timezone` is for datetime columns only")
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ContractError(
                f"{where}: unknown timezone {timezone!r} (an IANA name such as America/Sao_Paulo)"
            ) from error
    for key in ("min", "max"):
        if values.get(key) is None:
            continue
        limit = values[key]
        if kind in ("date", "datetime"):
            values[key] = _time_limit(limit, kind, timezone, f"{where}: `{key}`")  # type: ignore[arg-type]
        elif isinstance(limit, bool) or not isinstance(limit, int | float):
            raise ContractError(f"{where}: `{key}` must be a number, not {limit!r}")


def _time_limit(value: object, kind: str, timezone: object, where: str) -> date | datetime:
    """An ISO string (or a TOML date or datetime) as the column's typed value: a date, a naive
    datetime, or for a column with a timezone an aware UTC datetime (a naive limit is in the
    column's zone, like its values)."""
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        if kind == "date":
            if isinstance(value, datetime):
                if value.time() != datetime.min.time() or value.tzinfo is not None:
                    raise ValueError("a date column's limit is a date")
                return value.date()
            if isinstance(value, date):
                return value
            raise ValueError
        if not isinstance(value, datetime):
            if isinstance(value, date):
                value = datetime(value.year, value.month, value.day)
            else:
                raise ValueError
        if value.tzinfo is None and timezone is not None:
            value = value.replace(tzinfo=ZoneInfo(str(timezone)))
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value if timezone is not None else value.replace(tzinfo=None)
        return value
    except ValueError as error:
        raise ContractError(
            f"{where} must be an ISO 8601 {kind} such as "
            f"{'2024-01-31' if kind == 'date' else '2024-01-31T08:00:00'}, not {value!r}"
        ) from error


def parse_contract(path: Path) -> Contract:
    """Read one contract file; errors name the file and the offending key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ContractError(f"{path.name}: {error}") from error
    return parse_contract_text(text, path.name, default_name=path.stem)


def parse_contract_text(text: str, source: str, default_name: str | None = None) -> Contract:
    """A contract from its TOML text; `source` names it in errors (a file name, an s3:// URI).

    The name is the file's `name`, else `default_name` (a file's stem).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(f"{source}: {error}") from error
    try:
        return _contract_from_toml(data, source, default_name)
    except TypeError as error:  # a key of the wrong shape (a table where a list goes, ...)
        raise ContractError(f"{source}: {error}") from error


def _contract_from_toml(data: dict[str, object], source: str, default_name: str | None) -> Contract:
    columns = tuple(_column_from_toml(entry, source) for entry in data.get("columns", []))  # type: ignore[union-attr]
    if not columns:
        raise ContractError(f"{source}: a contract needs at least one column")
    names = [column.name for column in columns]
    if len(set(names)) != len(names) or any(normalise_name(n) != n for n in names):
        raise ContractError(f"{source}: column names must be unique and normalised: {names}")
    row_checks = tuple(RowCheck(**entry) for entry in data.get("row_checks", []))  # type: ignore[union-attr]
    for check in row_checks:
        if check.column not in names:
            raise ContractError(f"{source}: row check {check.name!r} names unknown column")
    powerbi = data.get("powerbi", {})
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ContractError(f"{source}: a contract needs a `name`")
    return Contract(
        name=name,
        columns=columns,
        row_checks=row_checks,
        powerbi_table=powerbi.get("table"),  # type: ignore[union-attr]
        description=str(data.get("description", "")),
    )


def available_contracts(directory: Path = DEFAULT_CONTRACTS_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.toml"))


def is_contract_path(name_or_path: str) -> bool:
    """A `--contract` value names a file when it ends in `.toml` or holds a `/`."""
    return name_or_path.lower().endswith(".toml") or "/" in name_or_path


def load_contract(name_or_path: str, directory: Path = DEFAULT_CONTRACTS_DIR) -> Contract:
    """The contract called `name` in `directory`, or the contract file at a path (a value
    ending in `.toml` or holding a `/`); an unknown name lists the known ones."""
    return parse_contract(contract_file(name_or_path, directory))


def contract_file(name_or_path: str, directory: Path = DEFAULT_CONTRACTS_DIR) -> Path:
    """Where `load_contract` reads `name_or_path` from; ContractError when there is no file."""
    if is_contract_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ContractError(f"no contract file {name_or_path!r}")
        return path
    name = name_or_path
    path = directory / f"{name}.toml"
    if not CONTRACT_NAME.fullmatch(name) or not path.is_file():
        known = ", ".join(available_contracts(directory)) or "none"
        raise ContractError(f"unknown contract {name!r} (known: {known}; or a path to a .toml file)")
    return path


def contract_for_key(key: str) -> str:
    """Which contract an object key belongs to: its first path segment (`vendas/x.csv`)."""
    first = key.lstrip("/").split("/", 1)[0]
    return normalise_name(first)
