"""The contract engine: one chunk of raw records in, clean rows and quarantined rows out.

It applies, in order, the whole-file duplicate rule, cleaning (clean.py), the contract's
Pandera schema (schema.py) and the whole-file id rule (dedup.py), and turns every failure
into a human reason on the row (`uf: not a Brazilian state code ('XX')`). Nothing here is
specific to a dataset: it all comes from the contract.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandera.polars as pa
import polars as pl

from processing.clean import column_cleaning, run_steps, type_message
from processing.contract import ColumnSpec, Contract, Limit
from processing.dedup import SeenIds
from processing.records import LINE, ParsedChunk, RaggedRow
from processing.schema import FAILED_ROWS_SCHEMA, build_schema

ERRORS = "_errors"
RAW = "_raw"
ROW = "_row"
TEXT_PREFIX = "_text_"  # a column's text before typing, beside its typed value
SHOWN_VALUE_CHARS = 80  # a reason quotes the value; the full value stays in its column


@dataclass
class ChunkResult:
    clean: pl.DataFrame
    rejected: pl.DataFrame
    input_rows: int
    duplicate_rows: int
    failures: Counter[tuple[str, str]]


def _format_limit(value: Limit | None) -> str:
    if value is None:
        return ""
    if isinstance(value, date):  # a datetime too
        return value.isoformat().replace("+00:00", "Z")
    return f"{value:g}"


def _check_messages(contract: Contract, present: list[str]) -> pl.DataFrame:
    """(column, check) -> reason text, whether to quote the value, and its order in a row."""
    # order: a row's reasons follow the contract's column order; a row check comes right
    # after the checks of the column it reports on
    rows: list[tuple[str, str, str, bool, int]] = [("row", "field_count", "", False, -1)]
    position = {name: 2 * index for index, name in enumerate(contract.column_names)}
    for spec in contract.columns:
        if spec.name not in present:
            continue
        order = position[spec.name]
        rows.append((spec.name, "required", "required value missing", False, order))
        rows.append((spec.name, "type", type_message(spec), True, order))
        rows.append((spec.name, "min", f"below the minimum {_format_limit(spec.min)}", True, order))
        rows.append((spec.name, "max", f"above the maximum {_format_limit(spec.max)}", True, order))
        rows.append((spec.name, "allowed", spec.message or _allowed_message(spec), True, order))
        rows.append((spec.name, "unique", "id already used by an earlier row", True, order))
    for rule in contract.row_checks:
        rows.append((rule.column, rule.name, rule.message, True, position[rule.column] + 1))
    return pl.DataFrame(
        rows, schema=["column", "check", "text", "show_value", "order"], orient="row"
    )


def _allowed_message(spec: ColumnSpec) -> str:
    return "not one of " + ", ".join(str(value) for value in spec.allowed)


class ChunkEngine:
    """Holds what must outlive a chunk: the schema, and the whole-file id memory.

    Duplicate rows are marked before a chunk comes here (`dedup.SeenRows`, which
    `process_file` runs in its read-ahead thread).
    """

    def __init__(
        self,
        contract: Contract,
        present: list[str],
        field_count: int,
    ) -> None:
        self.contract = contract
        self.present = present  # contract columns in the file, in contract order
        self.field_count = field_count
        self.schema = build_schema(contract, present)
        specs = [contract.column(name) for name in present]
        self.cleaning = {spec.name: column_cleaning(spec) for spec in specs}
        self.unique_columns = [spec.name for spec in specs if spec.unique]
        self.seen_ids = {name: SeenIds() for name in self.unique_columns}
        self.messages = _check_messages(contract, present)
        self._text_names = {name: f"{TEXT_PREFIX}{name}" for name in present}
        self._column_index = {name: index for index, name in enumerate(present)}

    @property
    def failure_order(self) -> list[tuple[str, str]]:
        """(column, check) in the order a row's reasons are listed (see `_rejected_rows`)."""
        return list(self.messages.sort("order", "check").select("column", "check").iter_rows())

    def process(
        self,
        parsed: ParsedChunk,
        extra_rejected: list[RaggedRow],
        duplicate: np.ndarray,
    ) -> ChunkResult:
        """Clean, validate and split a chunk; `duplicate` marks its rows identical to an
        earlier row of the file (`SeenRows.duplicates`)."""
        raw = parsed.frame
        candidates = raw.filter(pl.Series(~duplicate)) if duplicate.any() else raw
        cleanings = [self.cleaning[name] for name in self.present]
        values = run_steps(candidates.select(self.present), [c.text_steps for c in cleanings])
        typed = run_steps(values, [c.typed_steps for c in cleanings])
        failures = pl.concat(
            [
                self._unreadable(values, typed),
                self._reused_ids(typed),
                self._schema_failures(typed),
            ],
            how="vertical",
        )
        failures = self._drop_masked_required(failures)
        grouped = failures.group_by("column", "check").len()
        counts = Counter({(column, check): n for column, check, n in grouped.iter_rows()})
        ragged = [*parsed.ragged, *extra_rejected]
        for row in ragged:
            counts[("row", "field_count")] += 1
        failed_rows = failures["row"].unique()
        clean = typed.filter(~pl.int_range(typed.height).is_in(failed_rows.implode()))
        rejected = self._rejected_rows(candidates, failures, failed_rows, ragged)
        return ChunkResult(
            clean=clean,
            rejected=rejected,
            input_rows=raw.height + len(ragged),
            duplicate_rows=int(duplicate.sum()),
            failures=counts,
        )

    # -- failures, as a long frame (row, column, check) ----------------------------------
    @staticmethod
    def _empty_failures() -> pl.DataFrame:
        return pl.DataFrame(schema=FAILED_ROWS_SCHEMA)

    def _unreadable(self, values: pl.DataFrame, typed: pl.DataFrame) -> pl.DataFrame:
        """Values present but not of their column's type (`abc` in an int column).

        One query over both frames side by side: a flag per column computed as Series
        operations cost a query each, holding the GIL (3 per column, 27 per chunk).
        """
        return (
            pl.concat([typed, values.rename(self._text_names)], how="horizontal")
            .lazy()
            .select(
                (pl.col(text).is_not_null() & pl.col(name).is_null()).alias(name)
                for name, text in self._text_names.items()
            )
            .with_row_index("row")
            .filter(pl.any_horizontal(pl.exclude("row")))
            .unpivot(index="row", variable_name="column")
            .filter(pl.col("value"))
            .select("row", "column", check=pl.lit("type"))
            .collect()
        )

    def _reused_ids(self, typed: pl.DataFrame) -> pl.DataFrame:
        frames = [self._empty_failures()]
        for name in self.unique_columns:
            ids = typed[name]
            if ids.dtype != pl.Int64:
                ids = ids.hash().reinterpret(signed=True)
            rows = np.flatnonzero(self.seen_ids[name].reused(ids))
            if len(rows):
                frames.append(
                    pl.DataFrame({"row": pl.Series(rows, dtype=pl.UInt32)}).with_columns(
                        column=pl.lit(name), check=pl.lit("unique")
                    )
                )
        return pl.concat(frames)

    def _schema_failures(self, typed: pl.DataFrame) -> pl.DataFrame:
        try:
            self.schema.validate(typed, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return errors.failure_cases  # (row, column, check): see schema.ContractSchema
        return self._empty_failures()

    @staticmethod
    def _drop_masked_required(failures: pl.DataFrame) -> pl.DataFrame:
        """A value that could not be read is null to Pandera: report the reading, not 'missing'."""
        unreadable = failures.filter(pl.col("check") == "type").select("row", "column")
        if unreadable.height == 0:
            return failures
        masked = failures.filter(pl.col("check") != "type").join(
            unreadable, on=["row", "column"], how="anti"
        )
        return pl.concat([failures.filter(pl.col("check") == "type"), masked])

    # -- quarantined rows ----------------------------------------------------------------
    def _rejected_rows(
        self,
        candidates: pl.DataFrame,
        failures: pl.DataFrame,
        failed_rows: pl.Series,
        ragged: list[RaggedRow],
    ) -> pl.DataFrame:
        columns = [LINE, ERRORS, *self.present, RAW]
        frames = []
        if failures.height:
            # failing rows in chunk order, which is the order of `failures`' distinct rows
            failing = candidates.with_row_index(ROW).filter(pl.col(ROW).is_in(failed_rows.implode()))
            reasons = self._reasons(failures, failing.select(self.present))
            frames.append(
                failing.select(
                    LINE, reasons, *self.present, pl.lit(None, dtype=pl.String).alias(RAW)
                )
            )
        if ragged:
            frames.append(
                pl.DataFrame(
                    {
                        LINE: pl.Series([row.line for row in ragged], dtype=pl.Int64),
                        ERRORS: [self._ragged_reason(row) for row in ragged],
                        RAW: [row.text for row in ragged],
                    }
                ).with_columns(pl.lit(None, dtype=pl.String).alias(name) for name in self.present)
                .select(columns)
            )
        if not frames:
            return pl.DataFrame(schema={name: pl.String for name in columns}).with_columns(
                pl.col(LINE).cast(pl.Int64)
            )
        return pl.concat(frames).sort(LINE)

    def _reasons(self, failures: pl.DataFrame, failing: pl.DataFrame) -> pl.Series:
        """Each failing row's reasons, in the contract's order, one string per row of `failing`
        (the chunk's rows that have failures, in chunk order).

        A failure quotes its value from the failing rows' values laid end to end, column
        after column (row k of column j is value j * rows + k): a join on (row, column) cost
        a quarter of the quarantine's time per chunk.
        """
        values = failing.unpivot(value_name="value").get_column("value")
        position = pl.col("column").replace_strict(
            self._column_index, default=None, return_dtype=pl.UInt32
        ) * failing.height + (pl.col("row").rank("dense").cast(pl.UInt32) - 1)
        value = pl.lit(values).gather(position)
        return (
            failures.lazy()
            .join(self.messages.lazy(), on=["column", "check"], how="left")
            .select(
                "row",
                "order",
                "check",
                reason=pl.concat_str(
                    pl.col("column"),
                    pl.lit(": "),
                    pl.col("text"),
                    pl.when(pl.col("show_value") & value.is_not_null()).then(
                        pl.concat_str(
                            pl.lit(" ('"), value.str.slice(0, SHOWN_VALUE_CHARS), pl.lit("')")
                        )
                    ).otherwise(pl.lit("")),
                ),
            )
            .sort("row", "order", "check")
            .group_by("row", maintain_order=True)
            .agg(pl.col("reason").str.join("; ").alias(ERRORS))
            .collect()
            .get_column(ERRORS)
        )

    def _ragged_reason(self, row: RaggedRow) -> str:
        if row.fields < 0:
            return "row: unterminated quoted field"
        return f"row: has {row.fields} fields, the header has {self.field_count}"
