"""The page at `/`: each dataset's row count and latest rows, refreshing itself.

Plain server-rendered HTML with a meta refresh: a demo user watches rows arrive without any
JavaScript, and a test can read the counts in the HTML.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from powerbi_standin.store import Dataset

REFRESH_SECONDS = 2

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h2 { margin-bottom: 0.2em; }
.count { font-size: 1.6em; font-weight: bold; }
table { border-collapse: collapse; font-size: 0.85em; margin-top: 0.5em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.muted { color: #777; }
"""


def _rows_table(columns: list[str], rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    body = []
    for entry in rows:
        row = entry["row"]
        cells = "".join(
            f"<td>{html.escape(json.dumps(row.get(name), ensure_ascii=False)[:80])}</td>"
            for name in columns
        )
        body.append(f"<tr><td class='muted'>{entry['seq']}</td>{cells}</tr>")
    return f"<table><tr><th>#</th>{head}</tr>{''.join(body)}</table>"


def render_page(
    datasets: Sequence[tuple[Dataset, int, list[dict[str, Any]]]],
) -> str:
    """HTML for (dataset, row count, latest rows) triples."""
    sections = []
    for dataset, count, latest in datasets:
        columns = [c.name for table in dataset.tables for c in table.columns]
        columns = list(dict.fromkeys(columns))
        rows = _rows_table(columns, latest) if latest else "<p class='muted'>no rows yet</p>"
        sections.append(
            f"<section id='dataset-{html.escape(dataset.id)}'>"
            f"<h2>{html.escape(dataset.name)}</h2>"
            f"<div class='muted'>id {html.escape(dataset.id)} · {html.escape(dataset.default_mode)}"
            f" · retention {html.escape(dataset.retention)}"
            f" · tables {html.escape(', '.join(t.name for t in dataset.tables))}</div>"
            f"<div>rows: <span class='count' data-dataset='{html.escape(dataset.id)}'>{count}"
            f"</span></div>{rows}</section>"
        )
    content = "".join(sections) or "<p class='muted'>no datasets yet</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        f"<title>Power BI stand-in</title><style>{_STYLE}</style></head><body>"
        "<h1>Power BI stand-in</h1>"
        f"<p class='muted'>refreshes every {REFRESH_SECONDS} s</p>{content}</body></html>"
    )
