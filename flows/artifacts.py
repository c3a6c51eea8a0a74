"""What a run shows in the Prefect UI: a markdown summary and a sample of rejected rows.

Everything that comes from a file or an object key (the key itself, header names, values,
reasons) is untrusted text: the UI renders markdown artifacts, and every string cell of a
table artifact, as markdown that may hold raw HTML. It goes through `escape_markdown`, so a
key or a value can neither break out of a table nor inject HTML. Values of a contract's
`pii = true` columns never reach an artifact (processing/pii.py).

Artifact keys are a readable slug plus a hash of the exact object key, so two keys that
differ in any character (case, punctuation, a long common prefix) never share an artifact.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Collection
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from processing.pii import mask_rejected_row

SAMPLE_ROWS = 20
SAMPLE_VALUE_CHARS = 200
ARTIFACT_SLUG_CHARS = 60
ARTIFACT_HASH_CHARS = 16  # 64 bits of SHA-256: keys of one bucket never collide in practice

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Markdown's (CommonMark + GFM tables) significant characters, backslash-escaped; HTML's are
# written as entities, which no markdown renderer turns back into tags.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
# Anything a renderer may take as a line break, and the other control characters.
_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+")


def escape_markdown(text: object) -> str:
    """`text` as literal characters in markdown: on one line, no markup, no HTML."""
    flat = _BREAKS_AND_CONTROLS.sub(" ", str(text))
    return "".join(
        _HTML_ENTITIES.get(char) or (f"\\{char}" if char in _MARKDOWN_SPECIAL else char)
        for char in flat
    )


def artifact_key(kind: str, key: str) -> str:
    """`<kind>-<slug>-<hash>`: lower-case letters, digits and dashes, as Prefect requires.

    The slug (the key lower-cased, other characters as `-`, cut) is for reading; the hash of
    the exact key makes the artifact key different for any two different object keys.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:ARTIFACT_HASH_CHARS]
    slug = _NOT_SLUG.sub("-", key.lower()).strip("-")[:ARTIFACT_SLUG_CHARS].strip("-")
    return "-".join(part for part in (kind, slug, digest) if part)


def summary_markdown(report: dict[str, object]) -> str:
    e = escape_markdown
    failures = report.get("failures") or {}
    top = sorted(
        ((count, column, check) for column, checks in failures.items() for check, count in checks.items()),
        reverse=True,
    )[:10]
    lines = [
        f"# {e(report['source_key'])}",
        "",
        f"contract **{e(report['contract'])}**, eTag {e(report['source_etag'])}, "
        f"{e(report.get('encoding'))} / {e(report.get('delimiter'))}",
        "",
        "| input rows | exported | quarantined | duplicates |",
        "|---:|---:|---:|---:|",
        f"| {e(report['input_rows'])} | {e(report['exported_rows'])} | {e(report['quarantined_rows'])} "
        f"| {e(report['duplicate_rows'])} |",
        "",
    ]
    if report.get("status") == "rejected":
        lines += [f"**Rejected as a whole:** {e(report.get('reason'))}", ""]
    if top:
        lines += ["## Top failures", "", "| column | check | rows |", "|---|---|---:|"]
        lines += [f"| {e(column)} | {e(check)} | {e(count)} |" for count, column, check in top]
    if report.get("ignored_columns"):
        ignored = ", ".join(map(str, report["ignored_columns"]))[:500]  # type: ignore[call-overload]
        lines += ["", f"Ignored columns: {e(ignored)}"]
    if report.get("powerbi_destination"):
        lines += ["", f"Power BI: {e(report.get('powerbi_rows'))} rows in "
                  f"{e(report.get('powerbi_batches'))} POSTs to {e(report['powerbi_destination'])}"]
    elif report.get("powerbi_skipped"):
        lines += ["", f"Power BI: skipped ({e(report['powerbi_skipped'])})"]
    if report.get("lake_table"):
        lines += ["", f"Delta Lake: {e(report.get('lake_rows'))} rows to {e(report['lake_table'])}, "
                  f"table version {e(report.get('lake_version'))}"
                  + (f" ({e(report['lake_skipped'])})" if report.get("lake_skipped") else "")]
    outputs = report.get("outputs") or {}
    if outputs:
        lines += ["", "## Outputs", ""] + [f"- {e(kind)}: {e(uri)}" for kind, uri in outputs.items()]
    return "\n".join(lines)


def rejected_sample(
    rejected_csv: Path | None,
    limit: int = SAMPLE_ROWS,
    pii_columns: Collection[str] = (),
) -> list[dict[str, str]]:
    """The first rejected rows, pii masked, each value cut and escaped for the UI's markdown
    (it renders every string cell of a table artifact as markdown)."""
    if rejected_csv is None or not rejected_csv.exists():
        return []
    csv.field_size_limit(1 << 30)
    with rejected_csv.open(encoding="utf-8", newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            masked = mask_rejected_row(row, pii_columns)
            rows.append(
                {
                    # names: the engine's (`_line`, `_errors`, `_raw`) and the contract's
                    str(name): escape_markdown(value[:SAMPLE_VALUE_CHARS]) if value else ""
                    for name, value in masked.items()
                }
            )
            if len(rows) >= limit:
                break
    return rows


def publish_artifacts(
    report: dict[str, object], rejected_csv: Path | None, pii_columns: Collection[str]
) -> None:
    """The run's summary and rejected sample; `pii_columns` are those of the contract the run
    used (published or the image's), masked in the sample."""
    key = str(report["source_key"])
    create_markdown_artifact(
        summary_markdown(report),
        key=artifact_key("report", key),
        description=f"Data-quality report of {escape_markdown(key)}",
    )
    create_table_artifact(
        rejected_sample(rejected_csv, pii_columns=pii_columns),
        key=artifact_key("rejected", key),
        description=(
            f"Up to {SAMPLE_ROWS} quarantined rows of {escape_markdown(key)}, with their reasons "
            "(personal data masked)"
        ),
    )
