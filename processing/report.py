"""The run report: what happened to every row of a file, as a JSON-ready object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from processing.engine import ChunkResult


@dataclass
class Report:
    contract: str
    source: str
    encoding: str = "utf-8"
    delimiter: str = ","
    compression: str = "none"
    input_rows: int = 0
    exported_rows: int = 0
    quarantined_rows: int = 0
    duplicate_rows: int = 0
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    missing_optional_columns: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    def add_chunk(self, result: ChunkResult) -> None:
        self.input_rows += result.input_rows
        self.exported_rows += result.clean.height
        self.quarantined_rows += result.rejected.height
        self.duplicate_rows += result.duplicate_rows
        for (column, check), count in result.failures.items():
            per_column = self.failures.setdefault(column, {})
            per_column[check] = per_column.get(check, 0) + count

    def order_failures(self, order: list[tuple[str, str]]) -> None:
        """Failures in the contract's order (columns, then checks), whatever chunk saw them
        first: two runs of one file give the same report."""
        rank = {key: position for position, key in enumerate(order)}
        last = len(rank)
        ordered: dict[str, dict[str, int]] = {}
        for column, check in sorted(
            ((column, check) for column, checks in self.failures.items() for check in checks),
            key=lambda key: (rank.get(key, last), key),
        ):
            ordered.setdefault(column, {})[check] = self.failures[column][check]
        self.failures = ordered

    @property
    def accounted(self) -> bool:
        """Every input row is exported, quarantined or a duplicate: nothing lost."""
        return self.input_rows == self.exported_rows + self.quarantined_rows + self.duplicate_rows

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def write(self, path: Path) -> None:
        temp = path.with_name(f".{path.name}.part")
        temp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8")
        temp.replace(path)

    def summary(self) -> str:
        return (
            f"{self.source}: {self.input_rows} rows -> {self.exported_rows} exported, "
            f"{self.quarantined_rows} quarantined, {self.duplicate_rows} duplicates"
        )
