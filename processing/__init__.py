"""The processing core: reader, contract engine, cleaner, writers.

It imports no Prefect, no S3 client and no web framework, so `ivi process` starts fast and the
core is tested without servers. flows/ calls `processing.run.process_file`; nothing here
calls back out.
"""
