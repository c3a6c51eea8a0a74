"""The naive baseline: the `vendas` job done the usual pandas way, for the benchmark only.

What a data engineer would typically write first: `pd.read_csv` (retrying with cp1252 when
UTF-8 fails), a row-wise `DataFrame.apply(..., raw=True)` to clean each row, a `pandera.pandas`
schema validated lazily to find the bad rows, then `to_csv` / `to_json`. It does the same job
as `ivi process` (drops duplicates, quarantines invalid rows and reused ids, writes clean CSV +
JSON, rejected rows and a report), but it is not held to every rule of docs/processing.md: it
exists to show what the ordinary way costs in time and memory. It runs in its own venv (pandas
is deliberately not in the project's), created by bench_process.py.

Usage: python bench/naive_pandas.py FILE OUT_DIR
"""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import pandera.pandas as pa
except ImportError:  # pandera < 0.24
    import pandera as pa  # type: ignore[no-redef]

COLUMNS = ["id_venda", "data_venda", "cliente", "produto", "categoria", "quantidade",
           "preco_unitario", "valor_total", "uf"]
UFS = ["AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB",
       "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO"]


def normalise(name: str) -> str:
    name = unicodedata.normalize("NFKD", name.strip()).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def to_int(text: str) -> Any:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def to_decimal(text: str) -> Any:
    text = text.replace("R$", "").strip()
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def to_date(text: str) -> Any:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


def clean_row(row: Any) -> tuple[Any, ...]:
    """One row at a time, the way most scripts do it (`raw=True`: the row as a numpy array)."""
    v = {c: (row[i] or "").strip() for i, c in enumerate(COLUMNS)}
    return (
        to_int(v["id_venda"]), to_date(v["data_venda"]), v["cliente"] or None,
        v["produto"] or None, v["categoria"] or None, to_int(v["quantidade"]),
        to_decimal(v["preco_unitario"]), to_decimal(v["valor_total"]), v["uf"].upper() or None,
    )


SCHEMA = pa.DataFrameSchema(
    {
        "id_venda": pa.Column("Int64", nullable=False),
        "data_venda": pa.Column("datetime64[ns]", nullable=False),
        "cliente": pa.Column(str, nullable=False),
        "produto": pa.Column(str, nullable=False),
        "categoria": pa.Column(str, nullable=False),
        "quantidade": pa.Column("Int64", pa.Check.ge(1), nullable=False),
        "preco_unitario": pa.Column(float, pa.Check.ge(0), nullable=False),
        "valor_total": pa.Column(float, nullable=False),
        "uf": pa.Column(str, pa.Check.isin(UFS), nullable=False),
    },
    checks=[pa.Check(lambda d: (d["valor_total"] - d["quantidade"] * d["preco_unitario"]).abs()
                     <= 0.01, name="valor_total_matches")],
)


def main(path: str, out_dir: str) -> int:
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    sep = ";" if header.count(";") > header.count(",") else ","
    # Rows with a wrong field count are skipped by pandas and not counted (the usual setting).
    read_args: dict[str, Any] = dict(sep=sep, dtype=str, keep_default_na=False,
                                     on_bad_lines="skip", skip_blank_lines=True)
    try:
        raw = pd.read_csv(path, encoding="utf-8", **read_args)
        encoding = "utf-8"
    except UnicodeDecodeError:
        raw = pd.read_csv(path, encoding="cp1252", **read_args)
        encoding = "cp1252"
    raw.columns = [normalise(c) for c in raw.columns]
    raw = raw[COLUMNS]
    duplicated = raw.duplicated(keep="first")
    raw = raw[~duplicated]

    clean = raw.apply(clean_row, axis=1, raw=True, result_type="expand")
    clean.columns = COLUMNS
    clean["id_venda"] = clean["id_venda"].astype("Int64")
    clean["quantidade"] = clean["quantidade"].astype("Int64")
    clean["data_venda"] = pd.to_datetime(clean["data_venda"])
    bad = pd.Series(False, index=clean.index)
    try:
        SCHEMA.validate(clean, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        rows = pd.to_numeric(cases["index"], errors="coerce").dropna().astype(int)
        bad.loc[bad.index.intersection(rows)] = True
    reused = clean["id_venda"].notna() & clean["id_venda"].duplicated(keep="first")
    bad |= reused
    good = clean[~bad]
    stem = Path(path).stem
    good.to_csv(out / f"{stem}.csv", index=False, date_format="%Y-%m-%d")
    good.to_json(out / f"{stem}.json", orient="records", date_format="iso", force_ascii=False)
    raw[bad].to_csv(out / f"{stem}.rejected.csv")
    report = {
        "source": path, "encoding": encoding, "delimiter": sep,
        "input_rows": int(len(duplicated)), "exported_rows": int(len(good)),
        "quarantined_rows": int(bad.sum()),
        "duplicate_rows": int(duplicated.sum()),
        "duration_s": round(time.perf_counter() - started, 3),
    }
    (out / f"{stem}.report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
