"""A client's privacy level applied to its events (Arrow tables in the raw schema).

- standard: the events as they came.
- gdpr: events without analytics consent dropped; the IP address and the payload's user id
  replaced by keyed HMAC-SHA256 pseudonyms (`lib/privacy/pseudonymize.py`; the key comes from the
  environment); personal fields removed from the payload and personal data redacted from its
  remaining strings and from the URL; the user agent reduced to the browser family.
- hipaa: gdpr, plus URL query strings and free-text payload fields removed.

Every drop is counted with its reason, so processed rows = raw rows − dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from repazoo_assets.lib.privacy.pii import redact_many
from repazoo_assets.lib.privacy.pseudonymize import pseudonymize, pseudonymize_column

LEVELS = ("standard", "gdpr", "hipaa")
# Payload fields that are personal data by name: removed outright at GDPR and HIPAA.
PERSONAL_FIELDS = frozenset(
    "email e-mail mail name first_name last_name full_name phone phone_number mobile address street "
    "city zip postcode postal_code birthdate date_of_birth dob ssn national_id passport ip card card_number "
    "iban".split()
)
# Free text (anything a person typed): removed at HIPAA, where it may hold health information.
FREE_TEXT_FIELDS = frozenset("comment comments message notes note text description feedback query search body".split())
USER_ID_FIELDS = ("user_id", "userId", "customer_id")
_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Safari", re.compile(r"Safari/")),
)


@dataclass
class LevelResult:
    table: pa.Table
    dropped: Counter = field(default_factory=Counter)  # reason -> rows


def browser_family(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    for family, pattern in _BROWSERS:
        if pattern.search(user_agent):
            return family
    return "Other"


def apply_level(table: pa.Table, level: str, key: bytes) -> LevelResult:
    """The events of one client under `level`; `key` is the pseudonymization key."""
    if level not in LEVELS:
        raise ValueError(f"privacy level must be one of {', '.join(LEVELS)}, got {level!r}")
    if level == "standard":
        return LevelResult(table)
    result = LevelResult(table)
    consent = pc.fill_null(table.column("consent_analytics"), False)
    result.dropped["no analytics consent"] = table.num_rows - pc.sum(pc.cast(consent, pa.int64())).as_py() if table.num_rows else 0
    table = table.filter(consent)
    if not result.dropped["no analytics consent"]:
        del result.dropped["no analytics consent"]
    hipaa = level == "hipaa"
    ip = pseudonymize_column(table.column("ip_address"), key)
    # User agents, URLs and payload strings repeat a lot in event data: each distinct value is
    # handled once (and all strings of a table are redacted in one batch), then spread back.
    agents = _per_distinct(table.column("user_agent"), lambda values: [browser_family(u) for u in values])
    urls = _per_distinct(table.column("url"), lambda values: redact_many(
        [u.split("?", 1)[0].split("#", 1)[0] for u in values] if hipaa else values
    ))
    payloads = pa.array(_clean_payloads(table.column("payload").to_pylist(), key, hipaa), pa.string())
    for name, column in (("ip_address", ip), ("user_agent", agents), ("url", urls), ("payload", payloads)):
        table = table.set_column(table.schema.get_field_index(name), name, column)
    result.table = table
    return result


def _per_distinct(column: pa.ChunkedArray, transform) -> pa.Array:
    """`transform` (a list of non-null strings to a list of strings) applied once per distinct
    value of `column`; nulls stay null."""
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    distinct = encoded.dictionary.to_pylist()
    return pa.array(transform(distinct), pa.string()).take(encoded.indices)


def _clean_payloads(payloads: list[str | None], key: bytes, hipaa: bool) -> list[str | None]:
    """Each payload with personal fields removed, user ids pseudonymized and the remaining strings
    redacted; the strings of all payloads are redacted together, each distinct one once."""
    pseudonyms: dict[str, str] = {}
    strings: set[str] = set()
    cleaned = [
        None if p is None else _clean(orjson.loads(p), key, hipaa, strings, pseudonyms)  # validated JSON objects
        for p in payloads
    ]
    distinct = list(strings)
    changed = {s: r for s, r in zip(distinct, redact_many(distinct), strict=True) if r != s}
    out = []
    for data in cleaned:
        if data is None:
            out.append(None)
            continue
        if changed:
            data = _replace(data, changed)
        out.append(orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode())
    return out


def _clean(value: Any, key: bytes, hipaa: bool, strings: set[str], pseudonyms: dict[str, str]) -> Any:
    """Personal and (HIPAA) free-text fields removed, user ids pseudonymized; every other string
    is collected into `strings` for redaction."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = k.lower()
            if name in PERSONAL_FIELDS or (hipaa and name in FREE_TEXT_FIELDS):
                continue
            if k in USER_ID_FIELDS and v is not None:
                text = str(v)
                if text not in pseudonyms:
                    pseudonyms[text] = pseudonymize(text, key)
                out[k] = pseudonyms[text]
            else:
                out[k] = _clean(v, key, hipaa, strings, pseudonyms)
        return out
    if isinstance(value, list):
        return [_clean(v, key, hipaa, strings, pseudonyms) for v in value]
    if isinstance(value, str):
        strings.add(value)
    return value


def _replace(value: Any, redacted: dict[str, str]) -> Any:
    """The strings `_clean` collected replaced by their redaction (pseudonyms left as they are)."""
    if isinstance(value, dict):
        return {
            k: v if k in USER_ID_FIELDS and v is not None else _replace(v, redacted) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace(v, redacted) for v in value]
    if isinstance(value, str):
        return redacted.get(value, value)
    return value


# What may never leave in a GDPR or HIPAA client file: a raw IP address or e-mail address, in any
# of the columns that can carry one.
SCANNED_COLUMNS = ("ip_address", "url", "payload", "user_agent")
SCANNED_KINDS = ("ip", "email")


def raw_identifier_columns(table: pa.Table) -> tuple[list[str], int]:
    """(columns holding a raw IP or e-mail, values scanned) of a processed client file."""
    from repazoo_assets.lib.privacy.pii import find_pii_many

    dirty, scanned = [], 0
    for column in SCANNED_COLUMNS:
        if column not in table.column_names:
            continue
        values = [v for v in table.column(column).to_pylist() if v]
        scanned += len(values)
        if any(f.kind in SCANNED_KINDS for fs in find_pii_many(values) for f in fs):
            dirty.append(column)
    return dirty, scanned
