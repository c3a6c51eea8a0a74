"""A contract's columns as a Delta table's Arrow schema, and which changes a table accepts.

The core packages do not import each other, so a column arrives here as a `LakeColumn`
(name, contract type, whether it is a UTC datetime), which the flow builds from the contract.

Types: int -> long (int64), decimal -> double (the pipeline's typed value is a float64 and
the contract gives no precision or scale), date -> date, datetime -> timestamp_ntz (naive,
as the contract writes it) or timestamp (UTC, for a column with a `timezone`), string,
boolean. Every column is nullable: an optional column absent from a file is written as
nulls, and a column a contract adds later is null in the rows written before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SOURCE_KEY = "_source_key"
SOURCE_ETAG = "_source_etag"
INGESTED_AT = "_ingested_at"
LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field(SOURCE_KEY, pa.string()),
    pa.field(SOURCE_ETAG, pa.string()),
    pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC")),
)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "decimal": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "string": pa.string(),
    "boolean": pa.bool_(),
}


class LakeSchemaError(ValueError):
    """The table cannot take the contract's columns as they are now (names the column)."""


@dataclass(frozen=True)
class LakeColumn:
    """One contract column, as much of it as the table needs."""

    name: str
    type: str  # the contract's type: int, decimal, date, datetime, string, boolean
    utc: bool = False  # a datetime column with a `timezone`: its values are UTC instants


def arrow_type(column: LakeColumn) -> pa.DataType:
    if column.type not in _ARROW_TYPES:
        raise LakeSchemaError(f"column `{column.name}` has type {column.type!r}, which the lake does not know")
    if column.type == "datetime" and column.utc:
        return pa.timestamp("us", tz="UTC")
    return _ARROW_TYPES[column.type]


def table_schema(columns: list[LakeColumn]) -> pa.Schema:
    """The contract's columns in its order, then the lineage columns."""
    names = [column.name for column in columns]
    clash = sorted(set(names) & {field.name for field in LINEAGE_FIELDS})
    if clash:
        raise LakeSchemaError(f"column `{clash[0]}` is a lineage column of the lake; rename it in the contract")
    fields = [pa.field(column.name, arrow_type(column)) for column in columns]
    return pa.schema(fields + list(LINEAGE_FIELDS))


def check_compatible(table: pa.Schema, wanted: pa.Schema, where: str) -> list[str]:
    """The columns `wanted` adds to `table` (schema evolution); LakeSchemaError for a change
    the table cannot take: a column whose type differs (a Delta column keeps its type, and
    delta-rs would silently cast a narrowed one), or a column the table has and the contract
    no longer has (removed or renamed: its later rows would quietly be null)."""
    current = {field.name: field.type for field in table}
    for field in wanted:
        if field.name in current and not _same_type(current[field.name], field.type):
            raise LakeSchemaError(
                f"column `{field.name}` is {current[field.name]} in {where} but the contract makes it "
                f"{field.type}: a Delta column cannot change its type; keep the type in the contract, "
                "or give the new type a new column name"
            )
    wanted_names = set(wanted.names)
    for name in current:
        if name not in wanted_names:
            raise LakeSchemaError(
                f"column `{name}` is in {where} but no longer in the contract (removed or renamed): "
                "put it back in the contract (optional columns may be absent from a file)"
            )
    return [field.name for field in wanted if field.name not in current]


def _same_type(stored: pa.DataType, wanted: pa.DataType) -> bool:
    """Equal types, reading strings of any Arrow width as one (delta-rs hands back
    string_view or large_string for a Delta `string`)."""
    strings = (pa.string(), pa.large_string(), pa.string_view())
    if stored in strings and wanted in strings:
        return True
    return bool(stored == wanted)
