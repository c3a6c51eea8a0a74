"""What a run shows in the Prefect UI: a markdown summary and a sample of rejected rows."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

SAMPLE_ROWS = 20


def artifact_key(kind: str, key: str) -> str:
    """Artifact keys allow lower-case letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:80]
    return f"{kind}-{slug}" or kind


def summary_markdown(report: dict[str, object]) -> str:
    failures = report.get("failures") or {}
    top = sorted(
        ((count, column, check) for column, checks in failures.items() for check, count in checks.items()),
        reverse=True,
    )[:10]
    lines = [
        f"# {report['source_key']}",
        "",
        f"contract **{report['contract']}**, eTag `{report['source_etag']}`, "
        f"{report.get('encoding')} / `{report.get('delimiter')}`",
        "",
        "| input rows | exported | quarantined | duplicates |",
        "|---:|---:|---:|---:|",
        f"| {report['input_rows']} | {report['exported_rows']} | {report['quarantined_rows']} "
        f"| {report['duplicate_rows']} |",
        "",
    ]
    if report.get("status") == "rejected":
        lines += [f"**Rejected as a whole:** {report.get('reason')}", ""]
    if top:
        lines += ["## Top failures", "", "| column | check | rows |", "|---|---|---:|"]
        lines += [f"| {column} | {check} | {count} |" for count, column, check in top]
    if report.get("ignored_columns"):
        lines += ["", f"Ignored columns: {', '.join(map(str, report['ignored_columns']))[:500]}"]
    if report.get("powerbi_destination"):
        lines += ["", f"Power BI: {report.get('powerbi_rows')} rows in {report.get('powerbi_batches')} "
                  f"POSTs to `{report['powerbi_destination']}`"]
    elif report.get("powerbi_skipped"):
        lines += ["", f"Power BI: skipped ({report['powerbi_skipped']})"]
    outputs = report.get("outputs") or {}
    if outputs:
        lines += ["", "## Outputs", ""] + [f"- {kind}: `{uri}`" for kind, uri in outputs.items()]
    return "\n".join(lines)


def rejected_sample(rejected_csv: Path | None, limit: int = SAMPLE_ROWS) -> list[dict[str, str]]:
    if rejected_csv is None or not rejected_csv.exists():
        return []
    csv.field_size_limit(1 << 30)
    with rejected_csv.open(encoding="utf-8", newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            rows.append({k: (v[:200] if v else v) for k, v in row.items()})
            if len(rows) >= limit:
                break
    return rows


def publish_artifacts(report: dict[str, object], rejected_csv: Path | None) -> None:
    key = str(report["source_key"])
    create_markdown_artifact(
        summary_markdown(report),
        key=artifact_key("report", key),
        description=f"Data-quality report of {key}",
    )
    create_table_artifact(
        rejected_sample(rejected_csv),
        key=artifact_key("rejected", key),
        description=f"Up to {SAMPLE_ROWS} quarantined rows of {key}, with their reasons",
    )
