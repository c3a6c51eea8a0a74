"""What the service accepts: dataset definitions, JSON bodies and rows.

Every check raises `Rejected` with the service's error code and a message a data engineer can
act on (which row, which column, what was wrong); the routes turn it into a 400 answer. The
stand-in is deliberately strict where the service is strict: a client that passes here sends
JSON the service accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from powerbi_standin.limits import Limits
from powerbi_standin.store import RETENTION_POLICIES, Column, Table

#: Power BI data types, by the lower-cased spelling a request may use.
DATA_TYPES = {name.lower(): name for name in ("Int64", "Double", "Boolean", "DateTime", "String")}
DEFAULT_MODES = {"push": "Push", "streaming": "Streaming", "pushstreaming": "PushStreaming"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_NAME_CHARS = 100


class Rejected(Exception):
    """A request the service answers with 4xx and `{"error": {"code", "message"}}`."""

    def __init__(self, message: str, code: str = "InvalidRequest", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def _reject_constant(token: str) -> Any:
    raise Rejected(f"invalid JSON: {token} is not a JSON number (NaN and Infinity are refused)")


def parse_json(body: bytes) -> Any:
    """The body as JSON, refusing what Python's json accepts but JSON does not (NaN, Infinity)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Rejected(f"the body is not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except Rejected:
        raise
    except json.JSONDecodeError as error:
        raise Rejected(
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except (ValueError, RecursionError) as error:  # e.g. absurdly nested arrays
        raise Rejected(f"malformed JSON: {type(error).__name__}") from None


# Dataset definitions ----------------------------------------------------------------------
def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Rejected(f"{what} must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise Rejected(f"{what} is longer than {MAX_NAME_CHARS} characters")
    return value


def parse_table(entry: object, limits: Limits) -> Table:
    """One `{"name", "columns": [{"name", "dataType"}]}` of a create-dataset body."""
    if not isinstance(entry, dict):
        raise Rejected("each table must be an object with name and columns")
    table_name = _name(entry.get("name"), "table name")
    columns = entry.get("columns")
    if not isinstance(columns, list) or not columns:
        raise Rejected(f"table {table_name!r} needs a non-empty list of columns")
    if len(columns) > limits.columns_per_table:
        raise Rejected(
            f"table {table_name!r} has {len(columns)} columns; "
            f"the limit is {limits.columns_per_table}"
        )
    parsed: list[Column] = []
    seen: set[str] = set()
    for column in columns:
        if not isinstance(column, dict):
            raise Rejected(f"table {table_name!r}: each column must be an object")
        column_name = _name(column.get("name"), f"a column name of table {table_name!r}")
        if column_name.lower() in seen:
            raise Rejected(f"table {table_name!r}: column {column_name!r} appears twice")
        seen.add(column_name.lower())
        data_type = column.get("dataType")
        canonical = DATA_TYPES.get(str(data_type).lower()) if isinstance(data_type, str) else None
        if canonical is None:
            raise Rejected(
                f"table {table_name!r}, column {column_name!r}: dataType {data_type!r} is not one "
                f"of {sorted(DATA_TYPES.values())}"
            )
        parsed.append(Column(column_name, canonical))
    return Table(table_name, tuple(parsed))


def parse_dataset_definition(body: object, limits: Limits) -> tuple[str, str, tuple[Table, ...]]:
    """(name, defaultMode, tables) of a create-dataset body, as Power BI's REST API takes it."""
    if not isinstance(body, dict):
        raise Rejected("the body must be a JSON object with name, defaultMode and tables")
    name = _name(body.get("name"), "name")
    mode_value = body.get("defaultMode", "Push")
    mode = DEFAULT_MODES.get(str(mode_value).lower()) if isinstance(mode_value, str) else None
    if mode is None:
        raise Rejected(f"defaultMode {mode_value!r} is not one of {sorted(DEFAULT_MODES.values())}")
    tables = body.get("tables")
    if not isinstance(tables, list) or not tables:
        raise Rejected("tables must be a non-empty list")
    if len(tables) > limits.tables_per_dataset:
        raise Rejected(f"{len(tables)} tables; the limit is {limits.tables_per_dataset}")
    parsed = tuple(parse_table(entry, limits) for entry in tables)
    names = [table.name.lower() for table in parsed]
    if len(set(names)) != len(names):
        raise Rejected("table names must be unique")
    return name, mode, parsed


def parse_retention(value: object) -> str:
    """A `defaultRetentionPolicy` (query parameter or admin field): None (the default) or
    basicFIFO, spelled in any case."""
    if value is None or value == "":
        return "None"
    policy = RETENTION_POLICIES.get(str(value).lower()) if isinstance(value, str) else None
    if policy is None:
        raise Rejected(
            f"defaultRetentionPolicy {value!r} is not one of {sorted(RETENTION_POLICIES.values())}"
        )
    return policy


# Rows -------------------------------------------------------------------------------------
def _describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_problem(value: object, data_type: str, limits: Limits) -> str | None:
    """Why `value` is not a valid `data_type` cell, or None when it is."""
    if value is None:
        return None
    if data_type == "Int64":
        if type(value) is not int:
            return "expected Int64 (a JSON integer)"
        if not INT64_MIN <= value <= INT64_MAX:
            return "Int64 out of range"
        return None
    if data_type == "Double":
        if type(value) not in (int, float):
            return "expected Double (a JSON number)"
        if isinstance(value, float) and not math.isfinite(value):
            return "Double must be finite"
        return None
    if data_type == "Boolean":
        return None if type(value) is bool else "expected Boolean (true or false)"
    if data_type == "DateTime":
        if not isinstance(value, str):
            return "expected DateTime (an ISO 8601 string)"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "expected DateTime (an ISO 8601 string)"
        return None
    if data_type == "String":
        if not isinstance(value, str):
            return "expected String"
        if len(value) > limits.string_chars:
            return f"String longer than {limits.string_chars} characters ({len(value)})"
        return None
    return f"unknown data type {data_type}"


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


#: Fast yes/no per data type for a non-null value; `_type_problem` explains a "no".
_VALID: dict[str, Callable[[Any, Limits], bool]] = {
    "Int64": lambda v, _: type(v) is int and INT64_MIN <= v <= INT64_MAX,
    "Double": lambda v, _: type(v) is int or (type(v) is float and math.isfinite(v)),
    "Boolean": lambda v, _: type(v) is bool,
    "DateTime": lambda v, _: type(v) is str and _is_iso_datetime(v),
    "String": lambda v, limits: type(v) is str and len(v) <= limits.string_chars,
}


def check_rows(rows: object, table: Table, limits: Limits) -> list[dict[str, Any]]:
    """The rows of a POST, each checked against the table's columns and types."""
    if not isinstance(rows, list):
        raise Rejected("rows must be a JSON array of objects")
    if len(rows) > limits.rows_per_post:
        raise Rejected(
            f"{len(rows)} rows in one request; the limit is {limits.rows_per_post} rows per POST",
            code="TooManyRowsInRequest",
        )
    types = table.column_types()
    valid = {name: _VALID[data_type] for name, data_type in types.items()}
    lowered = {name.lower(): name for name in types}
    for index, row in enumerate(rows):
        if type(row) is not dict:
            raise Rejected(f"row {index}: expected a JSON object, got {_describe(row)}")
        for column, value in row.items():
            check = valid.get(column)
            if check is None:
                canonical = lowered.get(column.lower())
                if canonical is None:
                    raise Rejected(
                        f"row {index}: column {column!r} is not in table {table.name!r}",
                        code="ColumnNotFound",
                    )
                column, check = canonical, valid[canonical]
            if value is not None and not check(value, limits):
                problem = _type_problem(value, types[column], limits)
                raise Rejected(
                    f"row {index}, column {column!r}: {problem}, got {_describe(value)}",
                    code="InvalidValue",
                )
    return rows
