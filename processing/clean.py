"""Cleaning: raw strings to typed values, as polars expressions built from a contract.

Each column's rule is an expression pair: the typed (clean) value, and a flag for a value
that was present but could not be read as the column's type. Checking the typed values
against the contract's rules is Pandera's job (schema.py), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from processing.contract import ColumnSpec

TYPE_MESSAGES: dict[str, str] = {
    "int": "not an integer",
    "decimal": "not a decimal number",
    "date": "not a date (YYYY-MM-DD or DD/MM/YYYY)",
    "boolean": "not a boolean",
    "string": "not a string",
}
POLARS_TYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "decimal": pl.Float64(),
    "date": pl.Date(),
    "string": pl.String(),
    "boolean": pl.Boolean(),
}
_INT = r"^[+-]?\d+$"
_DOT_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_COMMA_DECIMAL = r"^[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+$"
_TRUE = {"true", "1", "sim", "s", "yes", "y", "verdadeiro"}
_FALSE = {"false", "0", "nao", "n", "no", "falso"}


@dataclass(frozen=True)
class ColumnCleaning:
    typed: pl.Expr  # the clean value, aliased to the column name
    unreadable: pl.Expr  # present but not of the column's type


def present(name: str) -> pl.Expr:
    """The trimmed value, null when empty: an empty field is a missing value."""
    trimmed = pl.col(name).str.strip_chars()
    return pl.when(trimmed != "").then(trimmed)


def _match_key(value: pl.Expr) -> pl.Expr:
    """Case- and accent-insensitive key, as contract.value_key computes it for the contract."""
    return value.str.to_lowercase().str.normalize("NFKD").str.replace_all(r"\p{Mn}", "")


def _canonical(value: pl.Expr, spec: ColumnSpec) -> pl.Expr:
    mapping = spec.canonical_values()
    if not mapping:
        return value
    return _match_key(value).replace_strict(mapping, default=value, return_dtype=pl.String)


def _typed(value: pl.Expr, spec: ColumnSpec) -> pl.Expr:
    if spec.type == "int":
        return pl.when(value.str.contains(_INT)).then(value).cast(pl.Int64, strict=False)
    if spec.type == "decimal":
        number = value.str.replace(r"^R\$\s*", "")
        as_float = (
            pl.when(number.str.contains(_DOT_DECIMAL))
            .then(number)
            .when(number.str.contains(_COMMA_DECIMAL))
            .then(number.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
            .cast(pl.Float64, strict=False)
        )
        return pl.when(as_float.is_finite()).then(as_float)
    if spec.type == "date":
        return pl.coalesce(
            value.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
            value.str.strptime(pl.Date, "%d/%m/%Y", strict=False),
        )
    if spec.type == "boolean":
        key = _match_key(value)
        return pl.when(key.is_in(_TRUE)).then(True).when(key.is_in(_FALSE)).then(False)
    return value


def column_cleaning(spec: ColumnSpec) -> ColumnCleaning:
    value = _canonical(present(spec.name), spec)
    typed = _typed(value, spec)
    return ColumnCleaning(
        typed=typed.alias(spec.name),
        unreadable=(value.is_not_null() & typed.is_null()).alias(spec.name),
    )
