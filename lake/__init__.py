"""The Delta Lake table per contract: the durable export, read by BI tools (no Prefect).

`schema.py` turns a contract's columns into the table's Arrow schema and refuses an
incompatible change; `data_files.py` streams rows into the table's Parquet files with their
Delta statistics; `table.py` replaces one raw object's rows in one atomic commit and
describes a table; `maintenance.py` compacts and vacuums. The flows call these with the
storage options of the object store (`storage.py`).
"""
