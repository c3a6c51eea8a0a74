"""Prefect flows of the pipeline and their tasks."""

import processing  # noqa: F401  (first: it configures the allocator before polars loads)
