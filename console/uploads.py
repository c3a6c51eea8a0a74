"""What may be uploaded, and under which key: the checks the page makes before sending a
file, made again here on the server (a browser's checks are a convenience, not a guard).

A file lands at `raw/<contract>/<sanitised name>`: the folder is the contract, as for any
upload. Only keys ending in `.csv` start a run (the relay's rule), and the pipeline tells a
gzipped file by its first bytes, not its name, so `nov.csv.gz` is stored as `nov.csv`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
# The store refuses a key segment over 255 bytes (KeyTooLongError): a name in a script of three
# bytes a letter reaches that at 85 letters, so the cut is in bytes, not characters.
MAX_NAME_BYTES = 180
_ACCEPTED = re.compile(r"\.csv(\.gz)?$", re.IGNORECASE)
# Kept as they are: letters and digits of any script, and a few harmless marks.
_KEPT_PUNCTUATION = frozenset(" -_.()+,")


@dataclass(frozen=True)
class Refusal:
    """Why a file is refused: a message key of `console/i18n.py` and its fields."""

    message: str
    fields: dict[str, object]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def sanitise_name(name: str) -> str:
    """The file's own name, safe as the last part of a key: no folder (`../`, `\\`), no
    control or format characters, nothing outside letters, digits and ` -_.()+,`
    (replaced by `_`), no leading dot or `_`, at most MAX_NAME_BYTES bytes of UTF-8 (whole
    characters) with its extension kept. Empty when nothing usable is left."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    kept = "".join(
        ch if ch.isalnum() or ch in _KEPT_PUNCTUATION else "_"
        for ch in base
        if unicodedata.category(ch)[0] != "C"
    )
    kept = re.sub(r"\s+", " ", kept).strip(" ._")
    if len(kept.encode("utf-8")) > MAX_NAME_BYTES:
        match = _ACCEPTED.search(kept)
        extension = match.group(0) if match else ""
        stem = kept[: len(kept) - len(extension)].encode("utf-8")[: MAX_NAME_BYTES - len(extension)]
        kept = stem.decode("utf-8", "ignore").rstrip(" ._") + extension  # a letter cut in two is dropped
    return kept


def stored_name(sanitised: str) -> str:
    """`nov.csv.gz` -> `nov.csv` (see the module's docstring); `nov.CSV` -> `nov.csv`."""
    return _ACCEPTED.sub("", sanitised) + ".csv"


def upload_key(contract: str, name: str) -> str:
    return f"{contract}/{stored_name(sanitise_name(name))}"


def check_upload(
    name: str, size: int | None, contract: str, contracts: list[str], max_bytes: int
) -> Refusal | None:
    """Why this file may not be uploaded under `contract`, or None when it may."""
    if contract not in contracts:
        return Refusal("error.unknown_contract", {"contract": contract})
    if not _ACCEPTED.search(name.strip()):
        return Refusal("error.not_csv", {"name": name})
    sanitised = sanitise_name(name)
    if not _ACCEPTED.search(sanitised) or not _ACCEPTED.sub("", sanitised).strip(" ._"):
        return Refusal("error.bad_name", {"name": name})
    if size is not None and size > max_bytes:
        return Refusal(
            "error.too_big", {"name": name, "size": human_size(size), "max": human_size(max_bytes)}
        )
    if size == 0:
        return Refusal("error.empty", {"name": name})
    return None


def check_content(name: str, first_bytes: bytes) -> Refusal | None:
    """A `.gz` file must be gzip (the pipeline would read anything else as text)."""
    if name.lower().endswith(".gz") and not first_bytes.startswith(GZIP_MAGIC):
        return Refusal("error.not_gzip", {"name": name})
    return None
