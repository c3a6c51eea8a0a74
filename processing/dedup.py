"""Whole-file memory: which rows and which ids were already seen, in a few bytes per row.

A file is processed in chunks, but duplicates and id reuse span the whole file. Keeping the
rows themselves would make memory grow with the data; instead each row is a 128-bit hash
(16 bytes) and each id an int64 (8 bytes), held in sorted numpy arrays: a lookup is a binary
search, an insert one memory move.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_SEED_A = 0x1F3D5B79
_SEED_B = 0x2468ACE0


class SortedSet:
    """A set of fixed-width values as one sorted numpy array."""

    def __init__(self, dtype: np.dtype | str) -> None:
        self.values = np.empty(0, dtype=dtype)

    def __len__(self) -> int:
        return len(self.values)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if len(self.values) == 0 or len(keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        positions = np.searchsorted(self.values, keys)
        positions[positions == len(self.values)] = 0
        return self.values[positions] == keys

    def add(self, keys: np.ndarray) -> None:
        """Add keys known to be new and distinct."""
        if len(keys):
            keys = np.sort(keys)
            self.values = np.insert(self.values, np.searchsorted(self.values, keys), keys)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


def row_keys(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """A 128-bit key per row from the exact strings of `columns` (two seeded 64-bit hashes)."""
    row = pl.struct(columns)
    hashes = frame.select(
        row.hash(_SEED_A).alias("a"), row.hash(_SEED_B).alias("b")
    )
    pair = np.empty((frame.height, 2), dtype=">u8")
    pair[:, 0] = hashes["a"].to_numpy()
    pair[:, 1] = hashes["b"].to_numpy()
    return pair.view("S16").ravel()


class SeenRows:
    """Rows already seen in this file: the first stays, later identical ones are duplicates."""

    def __init__(self) -> None:
        self._keys = SortedSet("S16")

    def duplicates(self, frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
        """Mask of rows identical to an earlier row (this chunk or before); records the rest."""
        keys = row_keys(frame, columns)
        first_in_chunk = pl.Series(keys).is_first_distinct().to_numpy()
        duplicate = ~first_in_chunk | self._keys.contains(keys)
        self._keys.add(keys[~duplicate])
        return duplicate

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes


class SeenIds:
    """Ids already used in this file by an earlier (non-duplicate) row."""

    def __init__(self) -> None:
        self._ids = SortedSet(np.int64)

    def reused(self, ids: pl.Series) -> np.ndarray:
        """Mask of ids used by an earlier row; nulls are never reused. Records the new ones."""
        present = ids.is_not_null().to_numpy()
        values = ids.fill_null(0).cast(pl.Int64).to_numpy()
        first_in_chunk = (ids.is_first_distinct() | ids.is_null()).to_numpy()
        reused = present & (~first_in_chunk | self._ids.contains(values))
        self._ids.add(values[present & ~reused])
        return reused

    @property
    def nbytes(self) -> int:
        return self._ids.nbytes
