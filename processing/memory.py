"""Allocator settings that let a streamed file's memory go back to the system chunk by chunk.

Why this exists: the benchmark (`make bench`) showed a 4 MB chunk adding ~150 MB of resident
memory that was never used again. One reason was glibc: its malloc raises its mmap threshold
each time a large block is freed (up to 32 MB), so numpy's chunk-sized arrays end up in the
heap, where freed space is kept rather than returned. Fixing the threshold (`mallopt`) stops
that: large blocks are mapped and unmapped. Measured on the 1M-row bench file, with the
jemalloc settings of `processing/__init__.py`: peak RSS 334 MB -> 250 MB. The price is page
faults (~0.5 s of system time per 1M rows): a 4 MB threshold was 0.3 s faster and 80 MB more.

The threshold is 2 MB, above the per-chunk arrays of positions and keys (0.3-1 MB each,
reused from the heap) and below the chunk-sized buffers (5 MB, mapped and returned).
Measured on the 1M- and 3M-row bench files against 256 KB, the same minutes: -5.5% wall
time at both sizes, peak RSS +10 MB at 1M rows and unchanged at 3M (281 MB); at 4 MB, 3M
rows peaked at 298 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 2 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024


def return_freed_memory() -> None:
    """Apply the settings above; idempotent, and a no-op where glibc is not the allocator."""
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return  # a user's own glibc tuning wins
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
