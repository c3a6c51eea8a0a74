"""Whole-file memory: which rows and which ids were already seen, in a few bytes per row.

A file is processed in chunks, but duplicates and id reuse span the whole file. Keeping the
rows themselves would make memory grow with the data; instead each row is a 96-bit hash
(12 bytes) and each id an int64 (8 bytes), held in sorted numpy runs (see `SortedRuns`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

_SEED_A = 0x1F3D5B79
_SEED_B = 0x2468ACE0
MAX_RUN_KEYS = 1 << 20  # runs stop merging at this size


class SortedRuns:
    """A set of fixed-width keys (each with an optional payload) as a few sorted runs.

    Why runs and not one sorted array: inserting a chunk's keys into one array copies the
    whole array (numpy arrays cannot grow in place), so at 3M rows every chunk moved ~50 MB
    and briefly held two copies. Here a chunk's keys become a new run; runs of similar size
    merge (as a binary counter does, so a key is merged about log2(n / chunk) times) until they
    reach `MAX_RUN_KEYS`, after which they stay as they are. A lookup is one binary search
    per run, and there are at most a few tens of runs.
    """

    def __init__(self, dtype: np.dtype | str, payload_dtype: np.dtype | str | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self.payload_dtype = None if payload_dtype is None else np.dtype(payload_dtype)
        self.runs: list[tuple[np.ndarray, np.ndarray | None]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self.runs)

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each of the sorted `keys` is in the set, and its payload where it is (0
        elsewhere).

        Sorted keys because a binary search over sorted keys walks the run forwards and stays
        in cache, about four times faster than in random order; the caller has sorted them
        anyway (see `first_of_equal_runs`).
        """
        found = np.zeros(len(keys), dtype=bool)
        payload = np.zeros(len(keys), dtype=self.payload_dtype or self.dtype)
        if not self.runs or len(keys) == 0:
            return found, payload
        for run, run_payload in self.runs:
            at = np.searchsorted(run, keys)
            np.minimum(at, len(run) - 1, out=at)
            hit = run[at] == keys
            if hit.any():
                found |= hit
                if run_payload is not None:
                    payload[hit] = run_payload[at[hit]]
        return found, payload

    def contains(self, keys: np.ndarray) -> np.ndarray:
        return self.find(keys)[0]

    def add(self, keys: np.ndarray, payload: np.ndarray | None = None) -> None:
        """Add sorted keys known to be new and distinct (with their payload when the set has
        one)."""
        if len(keys) == 0:
            return
        self.runs.append((keys, payload))
        # a binary counter: the newest run merges into the one before while that one is no
        # larger than twice its size, so sizes shrink from oldest to newest
        while len(self.runs) > 1:
            (older, older_payload), (newer, newer_payload) = self.runs[-2], self.runs[-1]
            if len(older) > 2 * len(newer) or len(older) + len(newer) > MAX_RUN_KEYS:
                break
            self.runs[-2:] = [_merge(older, older_payload, newer, newer_payload)]

    @property
    def nbytes(self) -> int:
        return sum(keys.nbytes + (0 if p is None else p.nbytes) for keys, p in self.runs)


def _merge(
    a: np.ndarray, a_payload: np.ndarray | None, b: np.ndarray, b_payload: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Two sorted runs as one, written straight into the merged arrays: where each key of
    the newer run `b` lands is its rank in `a` plus its own rank. Sorting the concatenation
    instead held four temporary arrays of the merged size (32 MB for 1M keys)."""
    at = np.searchsorted(a, b, side="right") + np.arange(len(b))
    from_a = np.ones(len(a) + len(b), dtype=bool)
    from_a[at] = False
    keys = np.empty(len(a) + len(b), dtype=a.dtype)
    keys[at] = b
    keys[from_a] = a
    if a_payload is None or b_payload is None:
        return keys, None
    payload = np.empty(len(keys), dtype=a_payload.dtype)
    payload[at] = b_payload
    payload[from_a] = a_payload
    return keys, payload


def row_keys(frame: pl.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 96-bit key per row from the exact strings of `columns`: a seeded 64-bit hash and 32
    bits of a second one."""
    values = frame.select(columns)
    second = values.hash_rows(_SEED_B).to_numpy().astype(np.uint32)  # keeps the low 32 bits
    return values.hash_rows(_SEED_A).to_numpy(), second


def first_of_equal_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable sorting order of `keys`, and which sorted keys equal the one before.

    Stable: equal keys keep their order in the chunk, so the first of each run of equal keys
    is its first occurrence and the others are later ones. One sort serves the lookup, the
    repeats within the chunk and the new run (sorting three times cost ~10 ms per chunk).
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    later = np.zeros(len(keys), dtype=bool)
    np.equal(ordered[1:], ordered[:-1], out=later[1:])
    return order, later


def _in_original_order(mask: np.ndarray, order: np.ndarray) -> np.ndarray:
    original = np.empty_like(mask)
    original[order] = mask
    return original


class SeenRows:
    """Rows already seen in this file: the first stays, later identical ones are duplicates.

    The 64-bit hash is the key and the 32-bit one its payload rather than one 12-byte key:
    numpy's binary search on integers is several times faster. A clash of 64-bit hashes
    between different rows (about one in 10^7 files of 3M rows) can make a duplicate look new;
    a new row looks like a duplicate only if both hashes clash (about one in 10^16 files).
    32 bits rather than 64 of the second hash: 12 MB less at 3M rows.
    """

    def __init__(self) -> None:
        self._hashes = SortedRuns(np.uint64, payload_dtype=np.uint32)

    def duplicates(self, frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
        """Mask of rows identical to an earlier row (this chunk or before); records the rest."""
        a, b = row_keys(frame, columns)
        order, later = first_of_equal_runs(a)
        a, b = a[order], b[order]
        later[1:] &= b[1:] == b[:-1]
        found, second_half = self._hashes.find(a)
        duplicate = later | (found & (second_half == b))
        self._hashes.add(a[~duplicate], b[~duplicate])
        return _in_original_order(duplicate, order)

    @property
    def nbytes(self) -> int:
        return self._hashes.nbytes


class SeenIds:
    """Ids already used in this file by an earlier (non-duplicate) row."""

    def __init__(self) -> None:
        self._ids = SortedRuns(np.int64)

    def reused(self, ids: pl.Series) -> np.ndarray:
        """Mask of ids used by an earlier row; nulls are never reused. Records the new ones."""
        ids = ids.cast(pl.Int64)
        if ids.null_count() == 0:  # the usual chunk: the ids as they are, without a copy
            return self._reused(ids.to_numpy())
        present = np.flatnonzero(ids.is_not_null().to_numpy())
        mask = np.zeros(len(ids), dtype=bool)
        mask[present] = self._reused(ids.drop_nulls().to_numpy())
        return mask

    def _reused(self, values: np.ndarray) -> np.ndarray:
        order, later = first_of_equal_runs(values)
        values = values[order]
        reused = later | self._ids.contains(values)
        self._ids.add(values[~reused])
        return _in_original_order(reused, order)

    @property
    def nbytes(self) -> int:
        return self._ids.nbytes
