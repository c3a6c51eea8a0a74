"""Personal data (LGPD): masking the values of `pii = true` columns in what leaves the store.

The quarantine file (`<key>.rejected.csv`) keeps every value: that is where a bad row gets
fixed, under the store's access rules. Every copy made elsewhere (the rejected-rows sample in
the Prefect artifacts, log lines, reports) goes through `mask_rejected_row` first:

- a pii column's value becomes `***`;
- a reason in `_errors` quotes the value it is about (`idade: above the maximum 120
  ('130')`), so the quote of a pii column's value becomes `('***')`;
- `_raw`, the whole text of a row with the wrong number of fields, may hold any column's
  value: in a contract with pii columns it is masked as a whole.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from processing.engine import ERRORS, RAW, SHOWN_VALUE_CHARS

MASK = "***"


def _quoted(value: str) -> str:
    """How a reason quotes a value (processing/engine.py `_reasons`)."""
    return f"('{value[:SHOWN_VALUE_CHARS]}')"


def mask_reason(reason: str, values: Collection[str]) -> str:
    """`reason` with each quote of one of `values` replaced by the mask."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        reason = reason.replace(_quoted(value), _quoted(MASK))
    return reason


def mask_rejected_row(
    row: Mapping[str, str | None], pii_columns: Collection[str]
) -> dict[str, str | None]:
    """A row of a rejected CSV with nothing personal left in it (see the module's text)."""
    if not pii_columns:
        return dict(row)
    masked = dict(row)
    personal = [value for name in pii_columns if (value := row.get(name))]
    for name in pii_columns:
        if row.get(name):
            masked[name] = MASK
    if row.get(ERRORS):
        masked[ERRORS] = mask_reason(str(row[ERRORS]), personal)
    if row.get(RAW):
        masked[RAW] = MASK
    return masked
