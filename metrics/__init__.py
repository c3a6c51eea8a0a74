"""The metrics exporter: what the flow runs did, read from their reports, for Prometheus.

A service of its own (`uvicorn metrics.app:app`), above the blocks and the store helpers,
beside the flows: the flow runs are short-lived processes, so their figures are derived from
the reports they leave in the store rather than pushed (docs/metrics.md says why).
"""
