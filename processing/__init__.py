"""The processing core: reader, contract engine, cleaner, writers.

It imports no Prefect, no S3 client and no web framework, so `ivi process` starts fast and the
core is tested without servers. flows/ calls `processing.run.process_file`; nothing here
calls back out.
"""

import os as _os

# Polars allocates through jemalloc, which by default keeps freed pages for seconds: with a
# new frame per chunk that retention, not the data, set the peak RSS (measured: 521 -> 441 MB
# at 1M rows). Must be set before polars is first imported; a user's own setting wins.
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
