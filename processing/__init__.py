"""The processing core: reader, contract engine, cleaner, writers.

It imports no Prefect, no S3 client and no web framework, so `ivi process` starts fast and the
core is tested without servers. flows/ calls `processing.run.process_file`; nothing here
calls back out.
"""

import os as _os

# Polars allocates through jemalloc. Measured with `make bench` (1M rows), against its defaults:
# - one arena, not one per thread: a chunk's frames are made in the read-ahead thread and
#   die in the writer, and per-thread arenas kept each other's freed pages (+70 MB);
# - freed pages go back after 1 s, not 10 s (the default held a second copy of the working
#   set) and not at once (purging on every free cost 1.2 s of system time per 1M rows).
# Must be set before polars is first imported; a user's own setting wins. memory.py tunes
# glibc's allocator, which numpy and Python use.
_os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0")
# numpy loads OpenBLAS, whose worker threads spin on a core for a while after start-up (2% of
# the CPU of a 1M-row run). Nothing here multiplies matrices: one thread is all it needs.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
