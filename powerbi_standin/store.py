"""Datasets and their rows in SQLite, so that a demo's rows survive a restart of the stand-in.

The standard library's sqlite3 and one connection guarded by a lock: the stand-in serves one
user's tests and demo. Each accepted POST is stored as one record (its rows as one JSON array
and their count), which is the service's own unit (a POST is accepted whole or not at all) and
keeps a 10,000-row POST to one insert: the stand-in must not be slower than what it stands in for.

A table's caps need its row count, not its rows: an admin may *seed* a table with a number of
placeholder rows (a record with that count and no row data), so that a test reaches 250,000 or
5,000,000 rows in one call. Placeholders count like rows, are the oldest rows of their record,
are never listed, and a `basicFIFO` table drops them first.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    group_id TEXT NOT NULL,
    push_key TEXT NOT NULL,
    default_mode TEXT NOT NULL,
    tables_json TEXT NOT NULL,
    limits_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    retention TEXT NOT NULL DEFAULT 'None'
);
CREATE TABLE IF NOT EXISTS posts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    received_at REAL NOT NULL,
    row_count INTEGER NOT NULL,
    rows_json TEXT NOT NULL,
    seeded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS posts_by_dataset ON posts (dataset_id, seq);
"""
#: Columns added after the first release, for stand-in files made before them.
ADDED_COLUMNS = (
    ("datasets", "retention", "TEXT NOT NULL DEFAULT 'None'"),
    ("posts", "seeded", "INTEGER NOT NULL DEFAULT 0"),
)
#: `defaultRetentionPolicy` values of the REST API (Datasets - PostDatasetInGroup).
RETENTION_POLICIES = {"none": "None", "basicfifo": "basicFIFO"}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # canonical Power BI spelling: Int64, Double, Boolean, DateTime, String


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    def column_types(self) -> dict[str, str]:
        return {column.name: column.data_type for column in self.columns}


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    group_id: str
    push_key: str
    default_mode: str  # Push, Streaming or PushStreaming
    tables: tuple[Table, ...]
    limit_overrides: dict[str, int] = field(default_factory=dict)
    retention: str = "None"  # the dataset's defaultRetentionPolicy: None or basicFIFO

    @property
    def streaming_only(self) -> bool:
        return self.default_mode == "Streaming"

    @property
    def fifo(self) -> bool:
        return self.retention == "basicFIFO"

    def table(self, name: str) -> Table | None:
        for table in self.tables:
            if table.name.lower() == name.lower():  # Power BI table names are case-insensitive
                return table
        return None

    def public(self) -> dict[str, Any]:
        """The dataset as `GET /_standin/datasets` shows it: everything but its push key."""
        return {
            "id": self.id,
            "name": self.name,
            "group": self.group_id,
            "defaultMode": self.default_mode,
            "streaming_only": self.streaming_only,
            "defaultRetentionPolicy": self.retention,
            "tables": [
                {
                    "name": table.name,
                    "columns": [{"name": c.name, "dataType": c.data_type} for c in table.columns],
                }
                for table in self.tables
            ],
            "limits": dict(self.limit_overrides),
        }


def _tables_to_json(tables: Iterable[Table]) -> str:
    return json.dumps(
        [{"name": t.name, "columns": [[c.name, c.data_type] for c in t.columns]} for t in tables]
    )


def _tables_from_json(text: str) -> tuple[Table, ...]:
    return tuple(
        Table(entry["name"], tuple(Column(name, kind) for name, kind in entry["columns"]))
        for entry in json.loads(text)
    )


DATASET_COLUMNS = "id, name, group_id, push_key, default_mode, tables_json, limits_json, retention"


class Store:
    """The stand-in's SQLite file: datasets (with their push keys) and the rows they got."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for table, column, declaration in ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Datasets -----------------------------------------------------------------------------
    def put_dataset(self, dataset: Dataset) -> None:
        """Create or replace a dataset's definition; its rows stay."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO datasets (id, name, group_id, push_key, default_mode, "
                "tables_json, limits_json, created_at, retention) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dataset.id,
                    dataset.name,
                    dataset.group_id,
                    dataset.push_key,
                    dataset.default_mode,
                    _tables_to_json(dataset.tables),
                    json.dumps(dataset.limit_overrides),
                    time.time(),
                    dataset.retention,
                ),
            )

    def dataset(self, dataset_id: str) -> Dataset | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?",
                (dataset_id,),
            ).fetchone()
        return None if row is None else self._dataset_from_row(row)

    def datasets(self) -> list[Dataset]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DATASET_COLUMNS} FROM datasets ORDER BY created_at, id"
            ).fetchall()
        return [self._dataset_from_row(row) for row in rows]

    @staticmethod
    def _dataset_from_row(row: tuple[Any, ...]) -> Dataset:
        id_, name, group_id, push_key, mode, tables_json, limits_json, retention = row
        return Dataset(
            id=id_,
            name=name,
            group_id=group_id,
            push_key=push_key,
            default_mode=mode,
            tables=_tables_from_json(tables_json),
            limit_overrides=json.loads(limits_json),
            retention=retention,
        )

    # Rows ---------------------------------------------------------------------------------
    def append_rows(
        self,
        dataset_id: str,
        table: str,
        rows: list[dict[str, Any]],
        keep_at_most: int | None = None,
    ) -> None:
        """Store one accepted POST's rows: all of them or none. With `keep_at_most` (a
        `basicFIFO` table), the table's oldest rows beyond it are dropped in the same step."""
        encoded = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
        self._insert(dataset_id, table, len(rows), encoded, seeded=False, keep_at_most=keep_at_most)

    def seed_rows(
        self, dataset_id: str, table: str, count: int, keep_at_most: int | None = None
    ) -> None:
        """Add `count` placeholder rows to a table (admin: to reach a cap without the data)."""
        self._insert(dataset_id, table, count, "[]", seeded=True, keep_at_most=keep_at_most)

    def _insert(
        self, dataset_id: str, table: str, count: int, encoded: str, *, seeded: bool,
        keep_at_most: int | None,
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO posts (dataset_id, table_name, received_at, row_count, rows_json, "
                    "seeded) VALUES (?, ?, ?, ?, ?, ?)",
                    (dataset_id, table, time.time(), count, encoded, int(seeded)),
                )
                if keep_at_most is not None:
                    self._drop_oldest(dataset_id, table, keep_at_most)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _drop_oldest(self, dataset_id: str, table: str, keep: int) -> None:
        """Drop the table's oldest rows until `keep` are left (lock held, in a transaction)."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(row_count), 0) FROM posts WHERE dataset_id = ? AND table_name = ?",
            (dataset_id, table),
        ).fetchone()
        excess = int(total) - keep
        if excess <= 0:
            return
        cursor = self._db.execute(
            "SELECT seq, row_count, rows_json FROM posts WHERE dataset_id = ? AND table_name = ? "
            "ORDER BY seq",
            (dataset_id, table),
        )
        for seq, count, rows_json in cursor.fetchall():
            if count <= excess:
                self._db.execute("DELETE FROM posts WHERE seq = ?", (seq,))
                excess -= count
                if excess == 0:
                    return
                continue
            rows = json.loads(rows_json)
            placeholders = count - len(rows)
            real_dropped = max(0, excess - placeholders)
            self._db.execute(
                "UPDATE posts SET row_count = ?, rows_json = ? WHERE seq = ?",
                (count - excess, json.dumps(rows[real_dropped:], ensure_ascii=False,
                                            separators=(",", ":")), seq),
            )
            return

    def row_count(self, dataset_id: str) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COALESCE(SUM(row_count), 0) FROM posts WHERE dataset_id = ?",
                (dataset_id,),
            ).fetchone()
        return int(count)

    def table_row_count(self, dataset_id: str, table: str) -> int:
        """The rows one table holds (what the per-table caps count)."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COALESCE(SUM(row_count), 0) FROM posts "
                "WHERE dataset_id = ? AND table_name = ?",
                (dataset_id, table),
            ).fetchone()
        return int(count)

    def latest_rows(self, dataset_id: str, limit: int) -> list[dict[str, Any]]:
        """The last `limit` rows received, newest first, with their table and row number."""
        if limit <= 0:
            return []
        found: list[dict[str, Any]] = []
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(row_count), 0) FROM posts WHERE dataset_id = ?",
                (dataset_id,),
            ).fetchone()
            cursor = self._db.execute(
                "SELECT table_name, row_count, rows_json FROM posts WHERE dataset_id = ? "
                "ORDER BY seq DESC",
                (dataset_id,),
            )
            number = int(total)
            for table, count, rows_json in cursor:
                rows = json.loads(rows_json)
                for row in reversed(rows):
                    found.append({"seq": number, "table": table, "row": row})
                    number -= 1
                    if len(found) >= limit:
                        return found
                number -= count - len(rows)  # placeholders: counted, never listed
        return found

    def posts(self, dataset_id: str) -> list[dict[str, Any]]:
        """Every accepted POST in arrival order: when (Unix time) and how many rows.

        What a test needs to check a client's pacing (e.g. 120 POSTs per minute) after the
        fact, whoever sent them.
        """
        with self._lock:
            cursor = self._db.execute(
                "SELECT received_at, row_count FROM posts WHERE dataset_id = ? AND seeded = 0 "
                "ORDER BY seq",
                (dataset_id,),
            )
            return [{"received_at": at, "rows": count} for at, count in cursor]

    def delete_rows(self, dataset_id: str) -> int:
        count = self.row_count(dataset_id)
        with self._lock:
            self._db.execute("DELETE FROM posts WHERE dataset_id = ?", (dataset_id,))
        return count
