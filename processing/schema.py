"""The Pandera schema of a contract, for the typed frame that cleaning produces.

Value rules (required, allowed values, ranges, rules across columns) are Pandera checks, run
lazily so that every failing check of every row is reported. Whole-file rules (unique ids,
duplicates) cannot be seen one chunk at a time and live in dedup.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.api.polars.container import DataFrameSchema
from pandera.backends.base import CoreCheckResult
from pandera.backends.polars.base import PolarsSchemaBackend, is_float_dtype
from pandera.backends.polars.components import ColumnBackend
from pandera.backends.polars.container import DataFrameSchemaBackend
from pandera.constants import CHECK_OUTPUT_KEY
from pandera.config import ValidationScope
from pandera.errors import FailureCaseMetadata, SchemaError, SchemaErrorReason
from pandera.validation_depth import validate_scope

from processing.clean import polars_type
from processing.contract import ColumnSpec, Contract, RowCheck

# Polars 2 starts each small query on its default engine at ~0.3 ms, and Pandera issues about
# a hundred per chunk: the in-memory engine cuts validation time per chunk by a quarter.
pl.Config.set_engine_affinity("in-memory")


def _register_backends_without_strategies() -> None:
    """Register Pandera's polars backends now, without importing hypothesis.

    Pandera registers them on the first `validate()`, and that imports its data-synthesis
    strategies, which import hypothesis when it is installed (it is, for the tests). We never
    synthesise data; the import cost every `ivi process` and every flow run (each forked from
    the pre-warmed engine, which imports this module) 1.7-2.1 s on a loaded machine, 0.05-0.11 s
    without it. Registering at import time also moves the rest of the work into the
    pre-warmed engine, before the fork. A process that already imported hypothesis keeps it.
    """
    blocked = "hypothesis" not in sys.modules
    if blocked:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]  # makes `import` fail
    try:
        DataFrameSchema.register_default_backends(pl.LazyFrame)
    finally:
        if blocked:
            del sys.modules["hypothesis"]


_register_backends_without_strategies()

FAILED_ROWS_SCHEMA = {"row": pl.UInt32, "column": pl.String, "check": pl.String}


class ContractColumn(pa.Column):
    """A Pandera column of a contract schema: validated as any column, reported by its schema.

    With `lazy=True`, Pandera builds a full failure report for each failing column, then the
    schema collects the same errors again and builds its own report; the columns' reports are
    never read. Building them was a quarter of each `validate` (10 ms per 62k-row chunk).
    """


class _FailingRowsOnly(PolarsSchemaBackend):
    """Pandera's `run_check`, without listing the failing values of a failing check (a join
    of the chunk with the check's output per check): the schema's report below is made from
    the check output alone."""

    def run_check(
        self, check_obj: pl.LazyFrame, schema: Any, check: pa.Check, check_index: int, *args: Any
    ) -> CoreCheckResult:
        if check.raise_warning:  # a warning quotes the failing values
            return super().run_check(check_obj, schema, check, check_index, *args)
        result = check(check_obj, *args)
        passed = bool(result.check_passed.collect().item())
        return CoreCheckResult(
            passed=passed,
            check=check,
            check_index=check_index,
            check_output=result.check_output.collect(),
            reason_code=SchemaErrorReason.DATAFRAME_CHECK,
            message=None if passed else f"{schema.name} failed check {check_index}: {check}",
        )


class _ColumnReportedBySchema(_FailingRowsOnly, ColumnBackend):
    def failure_cases_metadata(
        self, schema_name: str, schema_errors: list[SchemaError]
    ) -> FailureCaseMetadata:
        return FailureCaseMetadata(failure_cases=None, message={}, error_counts={})

    @validate_scope(scope=ValidationScope.DATA)
    def check_nullable(self, check_obj: pl.LazyFrame, schema: pa.Column) -> list[CoreCheckResult]:
        """Pandera's check, with its mask computed once. Pandera's own computes it three times
        for a column with nulls, once of them to list the null values, which the schema's
        report (below) never reads: 9 of the 26 ms of a chunk's `validate`."""
        if schema.nullable:
            return super().check_nullable(check_obj, schema)
        present = pl.col(schema.selector).is_not_null()
        if is_float_dtype(check_obj, schema.selector):  # Pandera counts NaN as null
            present = present & pl.col(schema.selector).is_not_nan()
        mask = check_obj.select(present).collect()
        return [
            CoreCheckResult(
                passed=False,
                check_output=mask.select(pl.col(column).alias(CHECK_OUTPUT_KEY)),
                check="not_nullable",
                reason_code=SchemaErrorReason.SERIES_CONTAINS_NULLS,
                message=f"non-nullable column '{schema.selector}' contains null values",
            )
            for column in mask.columns
            if not mask[column].all()
        ]


class ContractSchema(pa.DataFrameSchema):
    """A contract's Pandera schema, whose `SchemaErrors.failure_cases` is one row per failing
    (row, column, check), the check named as the contract names it.

    Pandera's own report also turns every failing value into a string, cast and summarised
    per error: half of the remaining time of `validate` on a chunk, for values that the
    quarantine file keeps anyway. A failure of a row check is reported on the column that
    the contract attaches it to (`check.owner`).
    """


class _FailedRowsBackend(_FailingRowsOnly, DataFrameSchemaBackend):
    def failure_cases_metadata(
        self, schema_name: str, schema_errors: list[SchemaError]
    ) -> FailureCaseMetadata:
        """The failing rows of every error in one query over the check outputs side by side
        (each output has a row per row of the chunk): four Series operations per error cost
        a query each, holding the GIL."""
        outputs: dict[str, pl.Series] = {}
        columns: dict[str, str] = {}
        checks: dict[str, str] = {}
        for error in schema_errors:
            if error.check_output is None:  # not about rows (a type, a check that crashed)
                raise error
            output = error.check_output
            if isinstance(output, pl.LazyFrame):
                output = output.collect()
            key = str(len(outputs))
            outputs[key] = output.get_column(CHECK_OUTPUT_KEY)
            check = error.check
            columns[key] = getattr(check, "owner", None) or error.schema.name
            checks[key] = "required" if check == "not_nullable" else getattr(check, "name", str(check))
        if not outputs:
            return FailureCaseMetadata(
                failure_cases=pl.DataFrame(schema=FAILED_ROWS_SCHEMA), message={}, error_counts={}
            )
        failed_rows = (
            pl.LazyFrame(outputs)
            # a null check output is not a failure (Pandera's own report reads it so)
            .select(pl.arg_where(pl.col(key).not_().fill_null(False)).implode() for key in outputs)
            .unpivot(variable_name="error", value_name="row")
            .explode("row")
            .drop_nulls("row")  # an error without a failing row explodes to one null row
            .select(
                "row",
                column=pl.col("error").replace_strict(columns, return_dtype=pl.String),
                check=pl.col("error").replace_strict(checks, return_dtype=pl.String),
            )
            .collect()
        )
        return FailureCaseMetadata(failure_cases=failed_rows, message={}, error_counts={})


ContractColumn.register_backend(pl.LazyFrame, _ColumnReportedBySchema, force=True)
for _frame_type in (pl.LazyFrame, pl.DataFrame):
    ContractSchema.register_backend(_frame_type, _FailedRowsBackend, force=True)


def _typed_allowed(spec: ColumnSpec) -> list[object]:
    converters = {"int": int, "decimal": float}
    convert = converters.get(spec.type, lambda value: value)
    return [convert(value) for value in spec.allowed]


def _column_checks(spec: ColumnSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if spec.min is not None:
        checks.append(pa.Check.greater_than_or_equal_to(spec.min, name="min"))
    if spec.max is not None:
        checks.append(pa.Check.less_than_or_equal_to(spec.max, name="max"))
    if spec.allowed:
        checks.append(pa.Check.isin(_typed_allowed(spec), name="allowed"))
    return checks


def _row_check(rule: RowCheck) -> pa.Check:
    expression = pl.sql_expr(rule.expression).fill_null(True)
    check = pa.Check(
        lambda data: data.lazyframe.select(expression),
        name=rule.name,
        error=rule.message,
    )
    check.owner = rule.column  # the column whose reason lists this rule's failures
    return check


def build_schema(contract: Contract, present: Sequence[str]) -> ContractSchema:
    """Schema for the contract columns present in a file (optional ones may be absent)."""
    columns = {
        spec.name: ContractColumn(
            polars_type(spec),
            checks=_column_checks(spec),
            nullable=not spec.required,
            coerce=False,
        )
        for spec in contract.columns
        if spec.name in present
    }
    checks = [
        _row_check(rule)
        for rule in contract.row_checks
        if set(_sql_columns(rule)) <= set(present)
    ]
    return ContractSchema(columns, checks=checks, strict=False, name=contract.name)


def _sql_columns(rule: RowCheck) -> list[str]:
    """Columns a row check's expression names: it runs only when all are in the file."""
    return pl.sql_expr(rule.expression).meta.root_names()
