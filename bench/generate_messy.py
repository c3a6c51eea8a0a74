"""Messy CSV files with a KNOWN ground truth, for the engine's tests and the benchmark.

Why it exists: the engine's rules (docs/processing.md) are only trustworthy if they are checked
against files whose right answer is known *without* asking the engine. So this module is an
independent implementation of those rules: it never imports `processing`, it reads the contract
files only as data, and it validates rows with its own small parser (`check_row`).

How the truth is known:
- the bulk of the file (~93 %) is generated vectorised (numpy StringDType) from known values, in
  every accepted spelling (decimal formats, both date formats, padded / odd-case strings,
  aliases); these rows are valid by construction, have unique ids and distinct contents, and
  their expected clean values come straight from the values they were drawn from;
- the messy rows (invalid values, wrong field counts, duplicates, reused ids, quoted / multi-line
  fields) are built one by one at planned positions, and a sequential pass over them applies
  the row-outcome rules (field count -> duplicate -> values -> unique id) with `check_row`;
- for small files the bulk rows are also run through `check_row` (`verify=True`), so a slip in
  the vectorised formatting cannot silently become "truth".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import time
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = REPO / "contracts"

# What the engine's report says for each encoding we write (docs/processing.md, "Reading").
REPORT_ENCODING = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "cp1252": "windows-1252",
    "utf-16": "utf-16",
}

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------------------------
# The rules, re-implemented (docs/processing.md, "Values")
# --------------------------------------------------------------------------------------------


def normalise_name(text: str) -> str:
    """Header normalisation: trim, lower-case, strip accents, non-alphanumeric runs to `_`."""
    text = fold(text.strip())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def fold(text: str) -> str:
    """Case- and accent-insensitive form, used for `allowed` / `aliases` matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_DEC_RE = re.compile(
    r"(?P<sign>[+-]?)(?:R\$ ?)?"
    r"(?P<num>[0-9]+(?:\.[0-9]+)?|[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+|[0-9]+,[0-9]+)\Z"
)
_ISO_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_BR_RE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})\Z")


def parse_int(text: str) -> int | None:
    """Optional sign and digits, within Int64; anything else is not an integer."""
    if not _INT_RE.match(text):
        return None
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else None


def parse_decimal(text: str) -> Decimal | None:
    """`1234.56`, `1.234,56`, `1234,56`, `R$ 1.234,56`: with a comma, `.` only groups thousands."""
    match = _DEC_RE.match(text)
    if not match:
        return None
    num = match["num"]
    if "," in num:
        num = num.replace(".", "").replace(",", ".")
    value = Decimal(num)
    return -value if match["sign"] == "-" else value


def parse_date(text: str) -> dt.date | None:
    """`YYYY-MM-DD` or `DD/MM/YYYY`, real calendar dates only (31/02 is not a date)."""
    match = _ISO_RE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _BR_RE.match(text)
        if not match:
            return None
        day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    aliases: dict[str, Any] = field(default_factory=dict)

    def lookup(self) -> dict[str, Any]:
        """Folded spelling -> value in the contract's spelling, for allowed values and aliases."""
        cached = _LOOKUPS.get(id(self))
        if cached is None or cached[0] is not self:
            table = {fold(str(value)): value for value in self.allowed or ()}
            table.update({fold(str(key)): value for key, value in self.aliases.items()})
            cached = _LOOKUPS[id(self)] = (self, table)
        return cached[1]


_LOOKUPS: dict[int, tuple[Column, dict[str, Any]]] = {}


@dataclass(frozen=True)
class Contract:
    name: str
    columns: tuple[Column, ...]
    row_checks: tuple[dict[str, Any], ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def id_column(self) -> str | None:
        return next((c.name for c in self.columns if c.unique), None)


def load_contract(name: str) -> Contract:
    """Read contracts/<name>.toml as plain data (the engine's contract code is not used)."""
    raw = tomllib.loads((CONTRACTS_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    columns = tuple(
        Column(
            name=c["name"],
            type=c.get("type", "string"),
            required=bool(c.get("required", False)),
            unique=bool(c.get("unique", False)),
            min=c.get("min"),
            max=c.get("max"),
            allowed=tuple(c["allowed"]) if "allowed" in c else None,
            aliases=dict(c.get("aliases", {})),
        )
        for c in raw["columns"]
    )
    return Contract(raw["name"], columns, tuple(raw.get("row_checks", [])))


Failure = tuple[str, str]  # (column, check)


def check_row(contract: Contract, values: dict[str, str]) -> tuple[dict[str, Any], list[Failure]]:
    """Apply the value rules to one row of raw strings (contract columns present in the file).

    Returns the clean values (None where missing or invalid) and the failures in contract column
    order. The `unique` check is not here: it depends on the rows before (see `_Truth`).
    """
    clean: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    failures: list[Failure] = []
    for col in contract.columns:
        if col.name not in values:
            continue
        text = values[col.name].strip()
        clean[col.name] = None
        if text == "":
            if col.required:
                failures.append((col.name, "required"))
            continue
        value: Any
        if col.allowed is not None:
            table = col.lookup()
            key = fold(text)
            if key in table:
                value = table[key]
            elif col.type == "int":
                value = parse_int(text)
                if value is None:
                    failures.append((col.name, "type"))
                    continue
                if value not in col.allowed:
                    failures.append((col.name, "allowed"))
                    typed[col.name] = value
                    continue
            else:
                failures.append((col.name, "allowed"))
                continue
        elif col.type == "int":
            value = parse_int(text)
        elif col.type == "decimal":
            value = parse_decimal(text)
        elif col.type == "date":
            value = parse_date(text)
        else:
            value = text
        if value is None:
            failures.append((col.name, "type"))
            continue
        typed[col.name] = value
        if col.min is not None and value < Decimal(str(col.min)):
            failures.append((col.name, "min"))
            continue
        if col.max is not None and value > Decimal(str(col.max)):
            failures.append((col.name, "max"))
            continue
        if col.type == "decimal":
            clean[col.name] = float(value)
        elif col.type == "date":
            clean[col.name] = value.isoformat()
        else:
            clean[col.name] = value
    for check in contract.row_checks:
        failed = _row_check(check, typed)
        if failed:
            failures.append((check["column"], check["name"]))
    order = {name: i for i, name in enumerate(contract.names)}
    failures.sort(key=lambda f: (order[f[0]], f[1] not in _COLUMN_CHECKS))
    return clean, failures


_COLUMN_CHECKS = {"required", "type", "allowed", "min", "max", "unique"}


def _row_check(check: dict[str, Any], typed: dict[str, Any]) -> bool:
    """Evaluate a contract row check on typed values; True when it FAILS.

    Only the checks the shipped contracts use are known here (an independent re-implementation,
    not a SQL engine). Skipped when a named column has no typed value.
    """
    if check["name"] == "valor_total_matches":
        need = ("quantidade", "preco_unitario", "valor_total")
        if any(typed.get(name) is None for name in need):
            return False
        expected = Decimal(typed["quantidade"]) * typed["preco_unitario"]
        return abs(typed["valor_total"] - expected) > Decimal("0.01")
    raise NotImplementedError(f"row check {check['name']!r} is not re-implemented here")


# Expected start of each message in `_errors` (docs/processing.md), used by the tests.
def message_prefix(contract: Contract, column: str, check: str) -> str:
    if column == "row" and check == "field_count":
        return "row: has "
    col = next(c for c in contract.columns if c.name == column)
    phrase = {
        "required": "required value missing",
        "min": "below the minimum",
        "max": "above the maximum",
        "unique": "id already used by an earlier row",
        "type": {
            "int": "not an integer",
            "decimal": "not a decimal number",
            "date": "not a date (YYYY-MM-DD or DD/MM/YYYY)",
        }.get(col.type, "type"),
    }.get(check)
    if phrase is None:  # allowed or a row check: the contract's message
        raw = tomllib.loads((CONTRACTS_DIR / f"{contract.name}.toml").read_text("utf-8"))
        if check == "allowed":
            phrase = next(c["message"] for c in raw["columns"] if c["name"] == column)
        else:
            phrase = next(r["message"] for r in raw["row_checks"] if r["name"] == check)
    return f"{column}: {phrase}"


# --------------------------------------------------------------------------------------------
# Formatting values in every accepted spelling
# --------------------------------------------------------------------------------------------

DEC_STYLES = 5  # 0 1234.56 | 1 1.234,56 | 2 1234,56 | 3 R$ 1.234,56 | 4 1234 (whole values)


def fmt_decimal(cents: int, style: int) -> str:
    """One decimal in one of the accepted spellings (negative values never get `R$`)."""
    neg, cents = cents < 0, abs(cents)
    whole, frac = divmod(cents, 100)
    grouped = f"{whole:,}".replace(",", ".")
    if style == 3 and neg:
        style = 1
    if style == 0:
        text = f"{whole}.{frac:02d}"
    elif style == 1:
        text = f"{grouped},{frac:02d}"
    elif style == 2:
        text = f"{whole},{frac:02d}"
    elif style == 3:
        text = f"R$ {grouped},{frac:02d}"
    else:
        text = str(whole) if frac == 0 else f"{whole}.{frac:02d}"
    return "-" + text if neg else text


def obj(values: list[Any]) -> np.ndarray:
    """A numpy object array of Python strings: cheap take / where, Python-speed formatting.

    (numpy's own string dtypes were measured slower here for building many short values.)
    """
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def v_str(values: np.ndarray) -> np.ndarray:
    return obj(list(map(str, values.tolist())))


def v_decimal(cents: np.ndarray, style: np.ndarray) -> np.ndarray:
    """`fmt_decimal` over arrays: the bulk and the messy rows share one formatter."""
    return obj(list(map(fmt_decimal, cents.tolist(), style.tolist())))


_ISO_DATES = obj([(dt.date(2020, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(2200)])
_BR_DATES = obj([(dt.date(2020, 1, 1) + dt.timedelta(days=i)).strftime("%d/%m/%Y")
                 for i in range(2200)])


def v_dates(days: np.ndarray, br: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw date strings (ISO or DD/MM/YYYY per `br`) and the expected ISO strings."""
    iso = _ISO_DATES[days]
    return np.where(br, _BR_DATES[days], iso), iso


def v_pad(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[mask] = "  " + values[mask] + " "
    return out


def v_variants(rng: np.random.Generator, table: list[tuple[str, Any]], weights: list[float],
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick raw spellings from (raw, expected) pairs; returns raw strings and expected values."""
    probs = np.asarray(weights, dtype=float)
    idx = rng.choice(len(table), size=n, p=probs / probs.sum())
    return obj([t[0] for t in table])[idx], obj([t[1] for t in table])[idx]


def fmt_date(days: int, br: bool) -> str:
    day = dt.date(2020, 1, 1) + dt.timedelta(days=days)
    return day.strftime("%d/%m/%Y") if br else day.isoformat()


def serialise(values: list[str], delimiter: str, quote_all: bool = False) -> str:
    """One CSV record, RFC 4180 quoting where needed (or everywhere)."""
    out = []
    for value in values:
        if quote_all or delimiter in value or '"' in value or "\n" in value or "\r" in value:
            out.append('"' + value.replace('"', '""') + '"')
        else:
            out.append(value)
    return delimiter.join(out)


# --------------------------------------------------------------------------------------------
# The two datasets: vocabularies, bulk rows, single messy rows
# --------------------------------------------------------------------------------------------

CLIENTES_NOMES = [
    "Ana Souza", "José da Silva", "Maria Conceição", "João Pedro", "Luíza Araújo",
    "Sérgio Gonçalves", "Ângela Brandão", "Carlos Eduardo", "Fernanda Lima", "Marcos Antônio",
    "Beatriz Côrtes", "Paulo Müller", "Rafaela Ribeiro", "Otávio Peçanha", "Lúcia Helena",
    "Raimundo Nonato",
]
PRODUTOS = [
    "Notebook", "Cadeira Gamer", "Café Torrado 500g", "Fogão 4 Bocas", "Tênis Corrida",
    "Camiseta Básica", "Geladeira Frost Free", "Livro Didático", "Pão de Açúcar", "Smartphone",
    "Mesa de Jantar", "Bola de Futebol",
]
CATEGORIAS = ["Eletrônicos", "Móveis", "Alimentos", "Eletrodomésticos", "Vestuário", "Esporte",
              "Livros"]
UFS = ["AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB",
       "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO"]
_UF_VARIANTS = obj([v for uf in UFS for v in (uf, uf.lower(), f" {uf.lower()} ", uf.title())])
OBSERVACOES = ["entregar à tarde", "cliente VIP", "pago em espécie", "troca solicitada"]
DAYS = 2192  # 2020-01-01 .. 2025-12-31

Fields = dict[str, str]  # file key (contract column or "observacao") -> raw value
Mutation = Callable[[random.Random, Fields, dict[str, Any]], None]


class Dataset:
    """What a generator needs to know about one contract's data (values, not rules)."""

    contract: Contract
    header: list[tuple[str, str]]  # (header text written, file key)
    id_offset: int

    @property
    def keys(self) -> list[str]:
        return [key for _, key in self.header]

    def bulk(self, rng: np.random.Generator, pos: np.ndarray
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raise NotImplementedError

    def valid_row(self, r: random.Random, pos: int) -> tuple[Fields, dict[str, Any]]:
        raise NotImplementedError

    # name -> (main column, mutation); each yields the failure(s) named in `intended`
    mutations: dict[str, tuple[str, Mutation]]
    valid_specials: dict[str, Callable[[random.Random, Fields, dict[str, Any], str], bool]]


def _money_style(r: random.Random) -> int:
    return r.randrange(4)


class Vendas(Dataset):
    def __init__(self) -> None:
        self.contract = load_contract("vendas")
        self.header = [
            ("ID Venda", "id_venda"), ("Data Venda", "data_venda"), ("Cliente", "cliente"),
            ("Produto", "produto"), ("Categoria", "categoria"), ("Quantidade", "quantidade"),
            (" Preço Unitário ", "preco_unitario"), ("Valor Total", "valor_total"),
            ("UF", "uf"), ("Observação", "observacao"),
        ]
        self.id_offset = 1
        self.mutations = _vendas_mutations()
        self.valid_specials = _vendas_valid_specials()

    def bulk(self, rng: np.random.Generator, pos: np.ndarray
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        n = len(pos)
        ids = pos + self.id_offset
        days = rng.integers(0, DAYS, n)
        date_raw, date_iso = v_dates(days, rng.random(n) < 0.5)
        cli = rng.integers(0, len(CLIENTES_NOMES), n)
        prod = rng.integers(0, len(PRODUTOS), n)
        cat = rng.integers(0, len(CATEGORIAS), n)
        qty = rng.integers(1, 21, n)
        price = rng.integers(100, 1_000_000, n)
        price = np.where(rng.random(n) < 0.15, price // 100 * 100, price)
        total = qty * price
        uf = rng.integers(0, len(UFS), n)
        uf_kind = rng.choice(4, size=n, p=[0.8, 0.08, 0.06, 0.06])
        uf_raw = _UF_VARIANTS[uf * 4 + uf_kind]
        obs = np.where(rng.random(n) < 0.05, obj(OBSERVACOES)[rng.integers(0, 4, n)], "")
        raw = {
            "id_venda": v_pad(v_str(ids), rng.random(n) < 0.03),
            "data_venda": date_raw,
            "cliente": v_pad(obj(CLIENTES_NOMES)[cli], rng.random(n) < 0.05),
            "produto": obj(PRODUTOS)[prod],
            "categoria": v_pad(obj(CATEGORIAS)[cat], rng.random(n) < 0.02),
            "quantidade": v_pad(v_str(qty), rng.random(n) < 0.02),
            "preco_unitario": v_decimal(price, rng.integers(0, DEC_STYLES, n)),
            "valor_total": v_decimal(total, rng.integers(0, DEC_STYLES, n)),
            "uf": uf_raw,
            "observacao": obs,
        }
        expected = {
            "id_venda": ids,
            "data_venda": date_iso,
            "cliente": obj(CLIENTES_NOMES)[cli],
            "produto": obj(PRODUTOS)[prod],
            "categoria": obj(CATEGORIAS)[cat],
            "quantidade": qty,
            "preco_unitario": price / 100,
            "valor_total": total / 100,
            "uf": obj(UFS)[uf],
        }
        return raw, expected

    def valid_row(self, r: random.Random, pos: int) -> tuple[Fields, dict[str, Any]]:
        qty, price = r.randint(1, 20), r.randint(100, 999_999)
        sem = {"qty": qty, "price": price, "days": r.randrange(DAYS)}
        fields = {
            "id_venda": str(pos + self.id_offset),
            "data_venda": fmt_date(sem["days"], r.random() < 0.5),
            "cliente": r.choice(CLIENTES_NOMES),
            "produto": r.choice(PRODUTOS),
            "categoria": r.choice(CATEGORIAS),
            "quantidade": str(qty),
            "preco_unitario": fmt_decimal(price, _money_style(r)),
            "valor_total": fmt_decimal(qty * price, _money_style(r)),
            "uf": r.choice(UFS),
            "observacao": "",
        }
        return fields, sem


def _set(column: str, *choices: str) -> Mutation:
    def mutate(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        f[column] = r.choice(choices)
    return mutate


BAD_DECIMALS = ("abc", "12,5x", "NaN", "inf", "N/A", "R$ abc", "1,2,3")
BAD_INTS = ("12a", "1.5", "dois", "1e3", "99999999999999999999")
MISSING = ("", "   ")


def _vendas_mutations() -> dict[str, tuple[str, Mutation]]:
    def qty_zero(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        f["quantidade"], f["valor_total"] = "0", fmt_decimal(0, r.randrange(DEC_STYLES))

    def qty_zero_stale_total(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        f["quantidade"] = "0"  # valor_total still q × p of the old q: both checks fail

    def qty_negative(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        q = -r.randint(1, 5)
        f["quantidade"] = str(q)
        f["valor_total"] = fmt_decimal(q * sem["price"], r.choice((0, 1, 2)))

    def price_negative(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        p = -sem["price"]
        f["preco_unitario"] = fmt_decimal(p, r.choice((0, 1, 2)))
        f["valor_total"] = fmt_decimal(sem["qty"] * p, r.choice((0, 1, 2)))

    def total_mismatch(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        off = r.choice((5, 100, 1234, -100, 99_999))
        f["valor_total"] = fmt_decimal(sem["qty"] * sem["price"] + off, _money_style(r))

    def impossible_date(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
        f["data_venda"] = r.choice(("31/02/2024", "2023-02-29", "2024-04-31", "30/02/2023",
                                    "2025-13-01", "00/01/2024"))

    return {
        "id_missing": ("id_venda", _set("id_venda", *MISSING)),
        "id_not_int": ("id_venda", _set("id_venda", *BAD_INTS)),
        "date_missing": ("data_venda", _set("data_venda", *MISSING)),
        "date_impossible": ("data_venda", impossible_date),
        "date_bad_format": ("data_venda", _set("data_venda", "2024/01/05", "ontem",
                                                "05-01-2024", "2024.01.05")),
        "cliente_missing": ("cliente", _set("cliente", *MISSING)),
        "produto_missing": ("produto", _set("produto", *MISSING)),
        "categoria_missing": ("categoria", _set("categoria", *MISSING)),
        "qty_missing": ("quantidade", _set("quantidade", *MISSING)),
        "qty_not_int": ("quantidade", _set("quantidade", *BAD_INTS)),
        "qty_zero": ("quantidade", qty_zero),
        "qty_zero_stale_total": ("quantidade", qty_zero_stale_total),
        "qty_negative": ("quantidade", qty_negative),
        "price_missing": ("preco_unitario", _set("preco_unitario", *MISSING)),
        "price_not_decimal": ("preco_unitario", _set("preco_unitario", *BAD_DECIMALS)),
        "price_negative": ("preco_unitario", price_negative),
        "total_missing": ("valor_total", _set("valor_total", *MISSING)),
        "total_not_decimal": ("valor_total", _set("valor_total", *BAD_DECIMALS)),
        "total_mismatch": ("valor_total", total_mismatch),
        "uf_missing": ("uf", _set("uf", *MISSING)),
        "uf_not_allowed": ("uf", _set("uf", "XX", "São Paulo", "S P", "BR", "s.p.")),
    }


def _vendas_valid_specials() -> dict[str, Callable[[random.Random, Fields, dict[str, Any], str],
                                                    bool]]:
    """Valid rows that are awkward to read. Each returns True to quote every field."""

    def delimiters_inside(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["cliente"], f["produto"] = "Silva, João", "Mesa; 4 cadeiras"
        return False

    def embedded_quote(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["produto"], f["observacao"] = 'TV 50" Smart', 'disse "ok"'
        return False

    def multiline(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["produto"] = "Kit\nCama Box"
        f["observacao"] = "linha 1\nlinha 2"
        return False

    def quote_all(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        return True

    def padded_odd_case(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        for key in ("id_venda", "data_venda", "cliente", "quantidade", "preco_unitario"):
            f[key] = f"  {f[key]}   "
        f["uf"] = f"  {r.choice(UFS).lower()} "
        return r.random() < 0.5

    def leap_day(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["data_venda"] = r.choice(("29/02/2024", "2024-02-29", "29/02/2020"))
        return False

    def edge_values(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["quantidade"], f["preco_unitario"] = "1", r.choice(("0", "0,00", "0.00", "R$ 0,00"))
        f["valor_total"] = r.choice(("0", "0.00", "0,00"))
        return False

    def big_money(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["quantidade"] = "1"
        f["preco_unitario"] = "R$ 1.234.567,89"
        f["valor_total"] = r.choice(("1234567.89", "1.234.567,89", "1234567,89"))
        return False

    return {
        "delimiters_inside": delimiters_inside, "embedded_quote": embedded_quote,
        "multiline": multiline, "quote_all": quote_all, "padded_odd_case": padded_odd_case,
        "leap_day": leap_day, "edge_values": edge_values, "big_money": big_money,
    }


GENERO_VARIANTS = [
    ("M", "M"), ("F", "F"), ("O", "O"), ("m", "M"), ("f", "F"), ("masculino", "M"),
    ("Feminino", "F"), ("FEMININO", "F"), ("MASCULINO", "M"), (" f ", "F"), ("outro", "O"),
    ("Outro", "O"),
]
GENERO_WEIGHTS = [30, 30, 3, 5, 5, 5, 5, 3, 3, 3, 2, 2]
ESTADO_VARIANTS = [
    ("Solteiro", "Solteiro"), ("Casado", "Casado"), ("Divorciado", "Divorciado"),
    ("Viúvo", "Viúvo"), ("União Estável", "União Estável"), ("solteiro", "Solteiro"),
    ("CASADO", "Casado"), ("viuvo", "Viúvo"), ("VIÚVO", "Viúvo"),
    ("uniao estavel", "União Estável"),
    ("UNIÃO ESTÁVEL", "União Estável"), (" casado ", "Casado"), ("divorciado", "Divorciado"),
    ("", None),
]
ESTADO_WEIGHTS = [20, 20, 8, 5, 8, 4, 3, 2, 2, 2, 2, 2, 2, 4]
CHURN_VARIANTS = [
    ("0", 0), ("1", 1), ("sim", 1), ("Sim", 1), ("SIM", 1), ("não", 0), ("Não", 0), ("nao", 0),
    ("NÃO", 0), ("true", 1), ("false", 0), ("True", 1), ("FALSE", 0), ("", None),
]
CHURN_WEIGHTS = [30, 30, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 3]


class Clientes(Dataset):
    # Column order in the file differs from the contract's (and an ignored column sits inside).
    def __init__(self) -> None:
        self.contract = load_contract("clientes")
        self.header = [
            ("ID Cliente", "id_cliente"), ("Idade", "idade"), ("Gênero", "genero"),
            ("Observação", "observacao"), ("Estado Civil", "estado_civil"),
            ("Renda Mensal", "renda_mensal"), ("Tempo como Cliente", "tempo_como_cliente"),
            ("Número Compras Mensal", "numero_compras_mensal"),
            ("Valor Médio Compra", "valor_medio_compra"), ("Suporte Acionado", "suporte_acionado"),
            ("Churn", "churn"), ("NPS", "nps"),
        ]
        self.id_offset = 100_001
        self.mutations = _clientes_mutations()
        self.valid_specials = _clientes_valid_specials()

    def bulk(self, rng: np.random.Generator, pos: np.ndarray
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        n = len(pos)
        ids = pos + self.id_offset
        idade = rng.integers(18, 91, n)
        genero_raw, genero = v_variants(rng, GENERO_VARIANTS, GENERO_WEIGHTS, n)
        estado_raw, estado = v_variants(rng, ESTADO_VARIANTS, ESTADO_WEIGHTS, n)
        churn_raw, churn = v_variants(rng, CHURN_VARIANTS, CHURN_WEIGHTS, n)
        renda = rng.integers(0, 3_000_000, n)
        renda = np.where(rng.random(n) < 0.3, renda // 100 * 100, renda)
        medio = rng.integers(0, 100_000, n)
        raw: dict[str, np.ndarray] = {
            "id_cliente": v_pad(v_str(ids), rng.random(n) < 0.03),
            "idade": v_pad(v_str(idade), rng.random(n) < 0.03),
            "genero": genero_raw,
            "observacao": np.where(rng.random(n) < 0.05, obj(OBSERVACOES)[rng.integers(0, 4, n)],
                                   ""),
            "estado_civil": estado_raw,
            "renda_mensal": v_decimal(renda, rng.integers(0, DEC_STYLES, n)),
            "valor_medio_compra": v_decimal(medio, rng.integers(0, DEC_STYLES, n)),
            "churn": churn_raw,
        }
        expected: dict[str, np.ndarray] = {
            "id_cliente": ids, "idade": idade, "genero": genero, "estado_civil": estado,
            "renda_mensal": renda / 100, "valor_medio_compra": medio / 100, "churn": churn,
        }
        for name, hi in (("tempo_como_cliente", 241), ("numero_compras_mensal", 31),
                         ("suporte_acionado", 11), ("nps", 11)):
            values = rng.integers(0, hi, n)
            empty = rng.random(n) < 0.03
            raw[name] = np.where(empty, "", v_str(values))
            expected[name] = np.where(empty, None, values.astype(object))
        empty = rng.random(n) < 0.03
        raw["valor_medio_compra"] = np.where(empty, "", raw["valor_medio_compra"])
        expected["valor_medio_compra"] = np.where(empty, None,
                                                  expected["valor_medio_compra"].astype(object))
        return raw, expected

    def valid_row(self, r: random.Random, pos: int) -> tuple[Fields, dict[str, Any]]:
        fields = {
            "id_cliente": str(pos + self.id_offset),
            "idade": str(r.randint(18, 90)),
            "genero": r.choice(GENERO_VARIANTS)[0],
            "observacao": "",
            "estado_civil": r.choice(ESTADO_VARIANTS)[0],
            "renda_mensal": fmt_decimal(r.randint(0, 2_999_999), r.randrange(DEC_STYLES)),
            "tempo_como_cliente": str(r.randint(0, 240)),
            "numero_compras_mensal": str(r.randint(0, 30)),
            "valor_medio_compra": fmt_decimal(r.randint(0, 99_999), r.randrange(DEC_STYLES)),
            "suporte_acionado": str(r.randint(0, 10)),
            "churn": r.choice(CHURN_VARIANTS)[0],
            "nps": str(r.randint(0, 10)),
        }
        return fields, {}


def _clientes_mutations() -> dict[str, tuple[str, Mutation]]:
    def negative_money(column: str) -> Mutation:
        def mutate(r: random.Random, f: Fields, sem: dict[str, Any]) -> None:
            f[column] = fmt_decimal(-r.randint(1, 500_000), r.choice((0, 1, 2)))
        return mutate

    return {
        "id_not_int": ("id_cliente", _set("id_cliente", "abc", "1.5", "C-1001",
                                          "99999999999999999999")),
        "idade_missing": ("idade", _set("idade", *MISSING)),
        "idade_not_int": ("idade", _set("idade", "trinta", "29.5", "29 anos")),
        "idade_above_max": ("idade", _set("idade", "121", "130", "999")),
        "idade_below_min": ("idade", _set("idade", "-3", "-1")),
        "genero_missing": ("genero", _set("genero", *MISSING)),
        "genero_not_allowed": ("genero", _set("genero", "X", "homem", "Masc", "mulher")),
        "estado_not_allowed": ("estado_civil", _set("estado_civil", "Viúva", "Noivo", "casada",
                                                    "Separado")),
        "renda_missing": ("renda_mensal", _set("renda_mensal", *MISSING)),
        "renda_not_decimal": ("renda_mensal", _set("renda_mensal", *BAD_DECIMALS)),
        "renda_negative": ("renda_mensal", negative_money("renda_mensal")),
        "tempo_negative": ("tempo_como_cliente", _set("tempo_como_cliente", "-1", "-12")),
        "compras_not_int": ("numero_compras_mensal", _set("numero_compras_mensal", "3.5", "três")),
        "medio_not_decimal": ("valor_medio_compra", _set("valor_medio_compra", *BAD_DECIMALS)),
        "medio_negative": ("valor_medio_compra", negative_money("valor_medio_compra")),
        "suporte_negative": ("suporte_acionado", _set("suporte_acionado", "-2")),
        "nps_above_max": ("nps", _set("nps", "11", "100")),
        "nps_not_int": ("nps", _set("nps", "dez", "9.5")),
        "churn_not_allowed": ("churn", _set("churn", "2", "-1", "10")),
    }


def _clientes_valid_specials() -> dict[str, Callable[[random.Random, Fields, dict[str, Any], str],
                                                      bool]]:
    def optional_empty(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        for key in ("estado_civil", "tempo_como_cliente", "numero_compras_mensal",
                    "valor_medio_compra", "suporte_acionado", "churn", "nps"):
            f[key] = r.choice(("", "  "))
        return False

    def no_id(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["id_cliente"] = ""
        return False

    def edges(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["idade"], f["nps"] = r.choice(("0", "120")), r.choice(("0", "10"))
        f["renda_mensal"], f["churn"] = r.choice(("0", "0,00", "R$ 0,00")), r.choice(("NÃO", "Sim"))
        return False

    def big_money(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["renda_mensal"] = r.choice(("R$ 1.234.567,89", "1.234.567,89", "1234567.89"))
        return False

    def quoted_text(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["observacao"] = r.choice(('disse "cancelar", depois não', "linha 1\nlinha 2; fim"))
        return r.random() < 0.5

    def padded_odd_case(r: random.Random, f: Fields, sem: dict[str, Any], d: str) -> bool:
        f["genero"] = r.choice(("  MASCULINO ", " feminino", "OUTRO  "))
        f["estado_civil"] = r.choice(("  união estável ", "VIUVO", " solteiro"))
        f["churn"] = r.choice((" sim ", "NAO", " False "))
        f["idade"] = f" {f['idade']}  "
        return r.random() < 0.5

    return {"optional_empty": optional_empty, "no_id": no_id, "edges": edges,
            "big_money": big_money, "quoted_text": quoted_text,
            "padded_odd_case": padded_odd_case}


DATASETS: dict[str, Callable[[], Dataset]] = {"vendas": Vendas, "clientes": Clientes}


# --------------------------------------------------------------------------------------------
# Planning the messy rows, writing the file, and keeping the truth
# --------------------------------------------------------------------------------------------


@dataclass
class Special:
    """One hand-built row: `fields` for a well-formed record, else only `text` (bad field count)."""

    kind: str
    text: str
    fields: Fields | None
    origin: int | None = None  # the earlier row a duplicate copies


def _plan(n: int, ds: Dataset, rng: np.random.Generator, invalid_share: float,
          duplicate_share: float) -> tuple[dict[int, str], np.ndarray]:
    """Choose the positions and kinds of the messy rows, and where blank lines go.

    The quarantine share is split between single-failure rows (one of every mutation kind, round
    robin), multi-failure rows, wrong field counts and reused ids; the mix does not depend on
    `n`, but each kind appears at least twice so that small files cover everything.
    """
    scale = invalid_share / 0.05
    kinds: list[str] = []
    single = max(round(0.037 * scale * n), 2 * len(ds.mutations))
    names = list(ds.mutations)
    kinds += [f"invalid:{names[i % len(names)]}" for i in range(single)]
    kinds += ["multi"] * max(round(0.005 * scale * n), 6)
    kinds += ["all_empty"] * max(round(0.0002 * scale * n), 2)
    fc = ["extra_field", "missing_field", "unquoted_delimiter", "one_field"]
    n_fc = max(round(0.003 * scale * n), 2 * len(fc))
    kinds += [f"fieldcount:{fc[i % len(fc)]}" for i in range(n_fc)]
    kinds += ["reuse_far"] * max(round(0.0025 * scale * n), 4)
    kinds += ["reuse_adjacent"] * max(round(0.001 * scale * n), 3)
    kinds += ["reuse_of_invalid"] * max(round(0.0005 * scale * n), 3)
    kinds += ["dup_adjacent"] * max(round(0.4 * duplicate_share * n), 4)
    kinds += ["dup_far"] * max(round(0.5 * duplicate_share * n), 6)
    kinds += ["dup_of_special"] * max(round(0.1 * duplicate_share * n), 4)
    vnames = list(ds.valid_specials)
    n_valid = max(round(0.004 * n), 2 * len(vnames))
    kinds += [f"valid:{vnames[i % len(vnames)]}" for i in range(n_valid)]
    if len(kinds) > (n - 1) // 2:
        raise ValueError(f"{n} rows are too few for the messy mix ({len(kinds)} special rows)")
    order = rng.permutation(len(kinds))
    positions = np.sort(rng.choice(np.arange(1, n), size=len(kinds), replace=False))
    plan = {int(p): kinds[i] for p, i in zip(positions, order, strict=True)}
    blanks = np.sort(rng.choice(np.arange(1, n), size=max(2, n // 1000), replace=False))
    return plan, blanks


def generate(path: str | Path, contract: str, rows: int, seed: int, encoding: str = "utf-8",
             delimiter: str = ",", newline: str = "\n", invalid_share: float = 0.05,
             duplicate_share: float = 0.01, sample: int = 300, chunk_rows: int = 250_000,
             verify: bool | None = None) -> dict[str, Any]:
    """Write a messy `contract` CSV of `rows` data rows to `path`; return its ground truth.

    Truth keys: input_rows, exported_rows, quarantined_rows, duplicate_rows, failures
    ({column: {check: count}}), quarantined_lines (set of `_line`), errors ({_line: ["col:check"]}
    in contract column order), expected ({id: {column: clean value}} for a sample of exported
    rows), encoding / delimiter as the report should say them, ignored_columns, columns,
    duplicate_pairs and reused_id_pairs ((earlier row index, later row index), 0-based).
    `verify` (default: rows <= 200,000) re-checks every bulk row with `check_row`.
    """
    if encoding not in REPORT_ENCODING:
        raise ValueError(f"encoding must be one of {sorted(REPORT_ENCODING)}")
    if delimiter not in (",", ";"):
        raise ValueError("delimiter must be ',' or ';'")
    verify = rows <= 200_000 if verify is None else verify
    ds = DATASETS[contract]()
    con = ds.contract
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    plan, blanks = _plan(rows, ds, rng, invalid_share, duplicate_share)
    special_mask = np.zeros(rows, dtype=bool)
    special_mask[list(plan)] = True
    bulk_positions = np.flatnonzero(~special_mask)
    sample_bulk = set(rng.choice(bulk_positions, size=min(sample, len(bulk_positions)),
                                 replace=False).tolist())

    # Originals that later rows copy (duplicates) or take the id of (reused ids). Far ones are
    # always bulk rows (kept by position); specials are copied only from the recent ones.
    originals: dict[int, int] = {}
    for p, kind in plan.items():
        if kind == "dup_adjacent":
            originals[p] = p - 1
        elif kind in ("dup_far", "reuse_far", "reuse_adjacent", "reuse_of_invalid",
                      "dup_of_special"):
            q = p - 1 if kind == "reuse_adjacent" else int(rng.integers(0, max(1, p - 1)))
            while special_mask[q]:  # position 0 is never special
                q -= 1
            originals[p] = q
    needed_bulk = {q for q in originals.values() if not special_mask[q]}
    wanted_bulk = np.array(sorted(needed_bulk | sample_bulk), dtype=np.int64)

    truth = _Truth(ds, rows, special_mask)
    bulk_fields: dict[int, Fields] = {}
    invalid_with_id: list[int] = []  # special rows with a valid id that are quarantined
    recent_specials: dict[int, Special] = {}
    quarantine_specials: list[int] = []
    fc_specials: list[int] = []
    header_text = serialise([h for h, _ in ds.header], delimiter)
    keys = ds.keys
    contract_keys = [k for k in keys if k in con.names]
    started = time.perf_counter()

    path = Path(path)
    with open(path, "wb") as out:
        out.write(_bom(encoding) + _encode(header_text + newline, encoding))
        for a in range(0, rows, chunk_rows):
            b = min(rows, a + chunk_rows)
            pos = np.arange(a, b)
            bulk_pos = pos[~special_mask[a:b]]
            chunk_rng = np.random.default_rng([seed, a])
            raw, expected = ds.bulk(chunk_rng, bulk_pos)
            lines_arr = _bulk_lines(raw, keys, delimiter, chunk_rng, ds)
            lo, hi = np.searchsorted(wanted_bulk, [a, b])
            for q in wanted_bulk[lo:hi].tolist():
                i = int(np.searchsorted(bulk_pos, q))
                f = {k: str(raw[k][i]) for k in keys}
                if q in needed_bulk:
                    bulk_fields[q] = f
                    truth.register_bulk_key(f)
                if q in sample_bulk:
                    truth.expected[int(expected[con.id_column][i])] = {
                        c: _py(expected[c][i]) for c in con.names}
            if verify:
                _verify_bulk(con, raw, expected, contract_keys)

            chunk_specials: dict[int, Special] = {}
            for p in sorted(k for k in plan if a <= k < b):
                kind = plan[p]
                sp = _build_special(kind, p, ds, r, delimiter, originals.get(p), bulk_fields,
                                    recent_specials, invalid_with_id, quarantine_specials,
                                    fc_specials)
                chunk_specials[p] = sp
                recent_specials[p] = sp
                outcome = truth.add_special(p, sp, blanks)
                if outcome == "quarantined":
                    quarantine_specials.append(p)
                    if sp.fields is None:
                        fc_specials.append(p)
                    elif truth.last_id is not None:
                        invalid_with_id.append(p)
                elif outcome == "exported" and sp.kind.startswith("valid:") and sp.fields:
                    truth.sample_special(sp, r)
                if len(recent_specials) > 5000:
                    recent_specials.pop(next(iter(recent_specials)))
            text_rows = np.empty(b - a, dtype=object)
            text_rows[bulk_pos - a] = lines_arr
            for p, sp in chunk_specials.items():
                text_rows[p - a] = sp.text
            for p in blanks[(blanks >= a) & (blanks < b)]:
                blank = r.choice(("", "   ", " \t "))
                text_rows[p - a] = blank + newline + text_rows[p - a]
            text = newline.join(text_rows.tolist()) + newline
            if b == rows:
                text += "  " + newline  # trailing whitespace-only line: not a row
            out.write(_encode(text, encoding))

    result = truth.result()
    result.update(
        contract=contract, rows=rows, seed=seed, path=str(path),
        encoding=REPORT_ENCODING[encoding], delimiter=delimiter,
        ignored_columns=[k for k in keys if k not in con.names],
        columns=[c for c in con.names if c in keys],
        generate_seconds=round(time.perf_counter() - started, 3),
    )
    return result


def _bom(encoding: str) -> bytes:
    return {"utf-8-sig": b"\xef\xbb\xbf", "utf-16": b"\xff\xfe"}.get(encoding, b"")


def _encode(text: str, encoding: str) -> bytes:
    """Chunks are encoded without a BOM: the BOM is written once, at the start."""
    codec = {"utf-8-sig": "utf-8", "utf-16": "utf-16-le"}.get(encoding, encoding)
    return text.encode(codec)


def _py(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value if isinstance(value, (int, float)) else str(value)


def _bulk_lines(raw: dict[str, np.ndarray], keys: list[str], delimiter: str,
                rng: np.random.Generator, ds: Dataset) -> np.ndarray:
    """Join the bulk fields into records; quote what contains the delimiter, and a few others."""
    cols = []
    for key in keys:
        values = raw[key]
        n = len(values)
        quote = np.fromiter((delimiter in v for v in values), dtype=bool, count=n)
        quote |= rng.random(n) < 0.03  # unnecessary quotes are legal and should be read
        values = values.copy()
        values[quote] = '"' + values[quote] + '"'
        cols.append(values.tolist())
    return np.array([delimiter.join(fields) for fields in zip(*cols, strict=True)],
                    dtype=object)


def _verify_bulk(con: Contract, raw: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                 contract_keys: list[str]) -> None:
    """Every bulk row must be valid and clean to exactly its drawn values (generator self-check)."""
    lists = {k: raw[k].tolist() for k in contract_keys}
    exp = {c: expected[c] for c in con.names}
    for i in range(len(lists[contract_keys[0]])):
        clean, failures = check_row(con, {k: lists[k][i] for k in contract_keys})
        want = {c: _py(exp[c][i]) for c in con.names}
        if failures or not _same_values(clean, want):
            raise AssertionError(f"bulk row is not what it was drawn from: {clean} {failures} "
                                 f"vs {want}")


def _same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or abs(x - y) > 1e-9:
                return False
        elif x != y:
            return False
    return True


def _build_special(kind: str, p: int, ds: Dataset, r: random.Random, delimiter: str,
                   original: int | None, bulk_fields: dict[int, Fields],
                   recent: dict[int, Special], invalid_with_id: list[int],
                   quarantined: list[int], fc_specials: list[int]) -> Special:
    """Build one messy row. Originals always sit before `p`."""

    def row_of(q: int) -> Special:
        if q in bulk_fields:
            f = bulk_fields[q]
            return Special("bulk", serialise([f[k] for k in ds.keys], delimiter), f, q)
        return Special(recent[q].kind, recent[q].text, recent[q].fields, q)

    keys = ds.keys
    if kind in ("dup_adjacent", "dup_far", "dup_of_special"):
        if kind == "dup_of_special":
            pool = [q for q in (quarantined[-50:] + fc_specials[-20:]) if q in recent]
            source = row_of(r.choice(pool) if pool else original)  # type: ignore[arg-type]
        else:
            source = row_of(original)  # type: ignore[arg-type]
        if source.fields is None:
            return Special(kind, source.text, None, source.origin)
        f = dict(source.fields)
        variant = r.randrange(4) if kind == "dup_far" else 0
        if variant == 1 and "observacao" in f:  # only an ignored column differs: still a duplicate
            f["observacao"] = r.choice(OBSERVACOES) if not f["observacao"] else ""
        return Special(kind, serialise([f[k] for k in keys], delimiter, quote_all=variant == 2), f,
                       source.origin)

    fields, sem = ds.valid_row(r, p)
    id_col = ds.contract.id_column or ""
    if kind.startswith("reuse"):
        target = original
        if kind == "reuse_of_invalid":
            pool = [q for q in invalid_with_id[-50:] if q in recent]
            if pool:
                target = r.choice(pool)
        source = row_of(target)  # type: ignore[arg-type]
        assert source.fields is not None
        fields[id_col] = source.fields[id_col]
        if kind == "reuse_adjacent" and r.random() < 0.5:
            # same row but for one padded value: "exactly the same strings" is not met
            fields = dict(source.fields)
            fields["cliente" if "cliente" in fields else "idade"] = " " + fields[
                "cliente" if "cliente" in fields else "idade"] + " "
        if [fields[k] for k in keys if k in ds.contract.names] == [
                source.fields[k] for k in keys if k in ds.contract.names]:
            raise AssertionError("reused id built an exact duplicate")
        return Special(kind, serialise([fields[k] for k in keys], delimiter), fields)
    if kind.startswith("invalid:"):
        ds.mutations[kind.split(":", 1)[1]][1](r, fields, sem)
    elif kind == "multi":
        by_column: dict[str, list[str]] = {}
        for name, (column, _) in ds.mutations.items():
            by_column.setdefault(column, []).append(name)
        for column in r.sample(sorted(by_column), r.choice((2, 2, 3))):
            ds.mutations[r.choice(by_column[column])][1](r, fields, sem)
    elif kind == "all_empty":
        fields = {k: "" for k in keys}
    elif kind.startswith("fieldcount:"):
        return Special(kind, _bad_field_count(kind.split(":", 1)[1], fields, keys, delimiter, r),
                       None)
    elif kind.startswith("valid:"):
        quote_all = ds.valid_specials[kind.split(":", 1)[1]](r, fields, sem, delimiter)
        return Special(kind, serialise([fields[k] for k in keys], delimiter, quote_all), fields)
    return Special(kind, serialise([fields[k] for k in keys], delimiter), fields)


def _bad_field_count(how: str, fields: Fields, keys: list[str], delimiter: str,
                     r: random.Random) -> str:
    """A record with more or fewer fields than the header (each field is plain text)."""
    values = [fields[k] for k in keys]
    if how == "extra_field":
        return serialise(values + ["sobra"], delimiter)
    if how == "missing_field":
        return serialise(values[:-1], delimiter)
    if how == "one_field":
        return r.choice(("lixo", "#N/A", "fim do relatório"))
    # unquoted_delimiter: a comma decimal under `,`, or a `;` inside a name under `;`
    money = next((i for i, k in enumerate(keys) if k in ("preco_unitario", "renda_mensal")))
    values[money] = "1234,56" if delimiter == "," else "1234.56"
    name = next((i for i, k in enumerate(keys) if k in ("cliente", "genero")), 0)
    if delimiter == ";":
        values[name] = values[name] + "; filial"
    text = serialise(values, delimiter)
    return text.replace('"1234,56"', "1234,56").replace(
        f'"{values[name]}"', values[name])


class _Truth:
    """The sequential pass over the messy rows: field count -> duplicate -> values -> unique id.

    Bulk rows need no pass: they are valid, their ids are fresh (position + offset) and their
    contents distinct; a bulk id counts as taken for every row after it.
    """

    def __init__(self, ds: Dataset, rows: int, special_mask: np.ndarray) -> None:
        self.ds, self.con, self.rows, self.mask = ds, ds.contract, rows, special_mask
        self.contract_keys = [k for k in ds.keys if k in self.con.names]
        self.seen: set[tuple[str, ...]] = set()
        self.claimed: set[int] = set()
        self.failures: Counter[Failure] = Counter()
        self.quarantined_lines: set[int] = set()
        self.errors: dict[int, list[str]] = {}
        self.expected: dict[int, dict[str, Any]] = {}
        self.duplicates = 0
        self.quarantined = 0
        self.extra_lines = 0
        self.duplicate_pairs: list[tuple[int, int]] = []
        self.reused_id_pairs: list[tuple[int, int]] = []
        self.last_id: int | None = None
        self.sampled_specials = 0

    def register_bulk_key(self, fields: Fields) -> None:
        self.seen.add(tuple(fields[k] for k in self.contract_keys))

    def _bulk_holds(self, value: int, p: int) -> int | None:
        q = value - self.ds.id_offset
        if 0 <= q < p and not self.mask[q]:
            return q
        return None

    def add_special(self, p: int, sp: Special, blanks: np.ndarray) -> str:
        line = 2 + p + self.extra_lines + int(np.searchsorted(blanks, p, side="right"))
        self.extra_lines += sp.text.count("\n")
        self.last_id = None
        if sp.fields is None:
            self.quarantined += 1
            self.failures[("row", "field_count")] += 1
            self.quarantined_lines.add(line)
            self.errors[line] = ["row:field_count"]
            return "quarantined"
        key = tuple(sp.fields[k] for k in self.contract_keys)
        if key in self.seen:
            self.duplicates += 1
            if sp.origin is not None:
                self.duplicate_pairs.append((sp.origin, p))
            return "duplicate"
        self.seen.add(key)
        clean, failures = check_row(self.con, {k: sp.fields[k] for k in self.contract_keys})
        id_col = self.con.id_column
        value = clean.get(id_col) if id_col else None
        if isinstance(value, int):
            holder = self._bulk_holds(value, p)
            if value in self.claimed or holder is not None:
                failures.append((id_col, "unique"))  # type: ignore[arg-type]
                order = {n: i for i, n in enumerate(self.con.names)}
                failures.sort(key=lambda f: (order[f[0]], f[1] not in _COLUMN_CHECKS))
                if holder is not None:
                    self.reused_id_pairs.append((holder, p))
            else:
                self.claimed.add(value)
                self.last_id = value
        if failures:
            self.quarantined += 1
            self.failures.update(failures)
            self.quarantined_lines.add(line)
            self.errors[line] = [f"{c}:{k}" for c, k in failures]
            return "quarantined"
        self._last_clean = clean
        return "exported"

    def sample_special(self, sp: Special, r: random.Random) -> None:
        """Keep the expected values of awkward valid rows (multi-line, quoted, edge values)."""
        clean = self._last_clean
        id_col = self.con.id_column
        if id_col and clean.get(id_col) is not None and self.sampled_specials < 300:
            self.expected[clean[id_col]] = {c: clean.get(c) for c in self.con.names}
            self.sampled_specials += 1

    def result(self) -> dict[str, Any]:
        failures: dict[str, dict[str, int]] = {}
        for (column, check), count in sorted(self.failures.items()):
            failures.setdefault(column, {})[check] = count
        exported = self.rows - self.quarantined - self.duplicates
        return {
            "input_rows": self.rows, "exported_rows": exported,
            "quarantined_rows": self.quarantined, "duplicate_rows": self.duplicates,
            "failures": failures, "quarantined_lines": self.quarantined_lines,
            "errors": self.errors, "expected": self.expected,
            "duplicate_pairs": self.duplicate_pairs, "reused_id_pairs": self.reused_id_pairs,
        }


def truth_to_json(truth: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy: sets become sorted lists, int keys become strings."""
    out = dict(truth)
    out["quarantined_lines"] = sorted(truth["quarantined_lines"])
    out["errors"] = {str(k): v for k, v in sorted(truth["errors"].items())}
    out["expected"] = {str(k): v for k, v in truth["expected"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a messy CSV with known ground truth.")
    parser.add_argument("--contract", choices=sorted(DATASETS), required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--encoding", choices=sorted(REPORT_ENCODING), default="utf-8")
    parser.add_argument("--delimiter", choices=[",", ";"], default=",")
    parser.add_argument("--crlf", action="store_true", help="\\r\\n line ends")
    parser.add_argument("--invalid-share", type=float, default=0.05)
    parser.add_argument("--truth", help="write the ground truth here as JSON")
    args = parser.parse_args(argv)
    truth = generate(args.out, args.contract, args.rows, args.seed, encoding=args.encoding,
                     delimiter=args.delimiter, newline="\r\n" if args.crlf else "\n",
                     invalid_share=args.invalid_share)
    if args.truth:
        Path(args.truth).write_text(json.dumps(truth_to_json(truth), ensure_ascii=False,
                                               indent=1), encoding="utf-8")
    summary = {k: truth[k] for k in ("input_rows", "exported_rows", "quarantined_rows",
                                      "duplicate_rows", "generate_seconds")}
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def reference_truth(path: str | Path, contract: str, encoding: str,
                    delimiter: str) -> dict[str, Any]:
    """Second, slow, independent computation of the truth: read the written bytes back with the
    standard `csv` module and apply the row-outcome rules row by row.

    Used by the generator's own tests to prove that the plan-based truth of `generate` matches
    what is really in the file (line numbers, field counts, duplicates, ids). Small files only.
    """
    import csv
    import io

    con = load_contract(contract)
    codec = {"cp1252": "cp1252", "utf-16": "utf-16"}.get(encoding, "utf-8-sig")
    text = Path(path).read_bytes().decode(codec)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [normalise_name(h) for h in next(reader)]
    index = {name: i for i, name in enumerate(header) if name in con.names}
    id_col = con.id_column
    seen: set[tuple[str, ...]] = set()
    claimed: set[int] = set()
    failures: Counter[Failure] = Counter()
    lines: set[int] = set()
    rows = duplicates = quarantined = 0
    clean_by_id: dict[int, dict[str, Any]] = {}
    previous = reader.line_num
    for record in reader:
        start, previous = previous + 1, reader.line_num
        if not record or (len(record) == 1 and record[0].strip() == ""):
            continue
        rows += 1
        if len(record) != len(header):
            quarantined += 1
            failures[("row", "field_count")] += 1
            lines.add(start)
            continue
        key = tuple(record[i] for i in index.values())
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        clean, fails = check_row(con, {name: record[i] for name, i in index.items()})
        value = clean.get(id_col) if id_col else None
        if isinstance(value, int):
            if value in claimed:
                fails.append((id_col, "unique"))  # type: ignore[arg-type]
            else:
                claimed.add(value)
        if fails:
            quarantined += 1
            failures.update(fails)
            lines.add(start)
        elif isinstance(value, int):
            clean_by_id[value] = clean
    grouped: dict[str, dict[str, int]] = {}
    for (column, check), count in sorted(failures.items()):
        grouped.setdefault(column, {})[check] = count
    return {
        "input_rows": rows, "exported_rows": rows - quarantined - duplicates,
        "quarantined_rows": quarantined, "duplicate_rows": duplicates, "failures": grouped,
        "quarantined_lines": lines, "clean_by_id": clean_by_id,
    }
