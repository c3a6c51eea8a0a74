"""A local stand-in for the Power BI push/streaming dataset API.

It enforces the documented contract (push key or bearer token, the dataset's columns and
types, the row, size and rate limits) and answers like the service, so that the pipeline's
export can be tested and demonstrated without a Power BI tenant. It imports nothing of the
pipeline: it is the other side of an HTTP contract, and must not share code with the client
it is meant to catch out.

Run it with `python -m powerbi_standin --port 8765 --db PATH`, or build the app with
`powerbi_standin.app.create_app(db_path)`.
"""
