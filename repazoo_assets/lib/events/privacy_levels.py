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

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from repazoo_assets.lib.privacy.pii import _NORMALIZE, redact_many
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


# A string can hold personal data only if the detector (`lib/privacy/pii.py`) finds a candidate
# in it, and every candidate it looks for needs one of these (on the text as the detector
# normalizes it, see below):
# - a digit: IPv4, phone, card, SSN, IBAN ("DE89…"), numbers of any kind, "ya29." tokens;
# - '@': e-mail addresses and "name @ domain" forms;
# - "::" or ':' before a hex digit: IPv6 (a "::" or colons between hex groups);
# - "at" after a space or an opening bracket: spelled-out addresses ("jane at example dot com",
#   "jane [at] example.com");
# - a key word of a password or key assignment ("password: …", "api_key=…", "pin is …"), all of
#   which contain one of secret/key/token/pass/pwd/pin, or "bearer" (any case);
# - the fixed prefix of a provider key: sk-, AKIA/ASIA/ABIA/ACCA, gh?_, github_pat_, xox, the
#   Slack hooks host, sk_/rk_, whsec_, AIza, GOCSPX, eyJ (JWT), BEGIN (PEM).
# The detector first replaces non-ASCII characters one for one by the ASCII character they stand
# for (`pii._NORMALIZE`: any decimal digit, any space, full-width and typographic punctuation), so
# every ASCII character the pattern keys on is matched through `_like`: a class holding it and
# every character the detector reads as it, taken from the detector's own table (full-width
# "jane（at）example.com" is an address to the detector, so it must pass here too).
# So a string that matches none of them is returned unchanged by the detector, and is not sent to
# it. The tests run the detector over the PII benchmark corpus, over tricky cases and over PII
# seeds with each character replaced by each of its equivalents in the table, and check that every
# string it changes matches this pattern.


def _like(chars: str) -> str:
    """An RE2 class matching each of `chars` and every character the detector normalizes to one
    of them."""
    members = set(chars) | {chr(code) for code, ascii_char in _NORMALIZE.items() if ascii_char in chars}
    codes = sorted(map(ord, members))
    ranges: list[list[int]] = []
    for code in codes:  # consecutive code points as ranges: the digit blocks are runs of ten
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(rf"\x{{{a:x}}}" if a == b else rf"\x{{{a:x}}}-\x{{{b:x}}}" for a, b in ranges)
    return f"[{body}]"


MAY_HOLD_PII = (
    r"\p{Nd}|" + _like("0123456789") + "|" + _like("@") + "|" + _like(":") + "(?:" + _like(":") + "|[0-9A-Fa-f])"
    + "|(?i:(?:" + _like("[({<\t\n\v\f\r ") + r"|\p{Zs})at)"
    + r"|(?i:secret|key|token|pass|pwd|pin|bearer)"
    + "|sk" + _like("-")
    + r"|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|xox|hooks" + _like(".") + r"slack|[sr]k_|whsec_|AIza|GOCSPX|eyJ|BEGIN"
)
# Per-value results kept across the slices and hours of one run (bounded: cleared when full).
CACHE_ENTRIES = 100_000


def may_hold_pii(values: pa.Array) -> pa.Array:
    """A boolean per string: False where the PII detector cannot find anything (see above)."""
    return pc.fill_null(pc.match_substring_regex(values, MAY_HOLD_PII), False)


class TransformCache:
    """What each distinct user agent, URL, payload string and user id became, kept for a whole
    run: the same values come back slice after slice and hour after hour. Pure functions of the
    value (and of the key, fixed for a run), so a cached result is the result. The key's
    fingerprint is kept: a cache used with another key raises (its pseudonyms would be wrong)."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self.limit = limit
        self.key_fingerprint: bytes | None = None
        self.families: dict[str, str | None] = {}
        self.redacted: dict[str, str] = {}
        self.urls: dict[bool, dict[str, str]] = {False: {}, True: {}}
        self.pseudonyms: dict[str, str] = {}
        self.decisions: dict[bool, dict[str, int]] = {False: {}, True: {}}  # field name -> _KEEP/_DROP/_PSEUDONYM

    def bind(self, key: bytes) -> None:
        """Ties the cache to the pseudonymization key of its first use."""
        fingerprint = hashlib.sha256(b"repazoo transform cache\0" + key).digest()
        if self.key_fingerprint is None:
            self.key_fingerprint = fingerprint
        elif not hmac.compare_digest(fingerprint, self.key_fingerprint):
            raise ValueError("this TransformCache holds results of another pseudonymization key")

    def room(self, table: dict) -> dict:
        if len(table) > self.limit:
            table.clear()
        return table


def redact_strings(values: list[str], cache: TransformCache) -> list[str]:
    """`redact_many` of each (distinct) value, calling the detector only for values not seen
    before that may hold personal data."""
    known = cache.room(cache.redacted)
    new = [v for v in dict.fromkeys(values) if v not in known]
    if new:
        suspect = may_hold_pii(pa.array(new, pa.string())).to_pylist()
        to_scan = [v for v, flag in zip(new, suspect, strict=True) if flag]
        for v, flag in zip(new, suspect, strict=True):
            if not flag:
                known[v] = v
        for v, r in zip(to_scan, redact_many(to_scan), strict=True):
            known[v] = r
    return [known[v] for v in values]


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


def apply_level(table: pa.Table, level: str, key: bytes, cache: TransformCache | None = None) -> LevelResult:
    """The events of one client under `level`; `key` is the pseudonymization key. `cache` carries
    per-value results from one call to the next (the same key throughout)."""
    if level not in LEVELS:
        raise ValueError(f"privacy level must be one of {', '.join(LEVELS)}, got {level!r}")
    if level == "standard":
        return LevelResult(table)
    cache = cache if cache is not None else TransformCache()
    cache.bind(key)
    result = LevelResult(table)
    consent = pc.fill_null(table.column("consent_analytics"), False)
    result.dropped["no analytics consent"] = table.num_rows - pc.sum(pc.cast(consent, pa.int64())).as_py() if table.num_rows else 0
    table = table.filter(consent)
    if not result.dropped["no analytics consent"]:
        del result.dropped["no analytics consent"]
    hipaa = level == "hipaa"
    ip = pseudonymize_column(table.column("ip_address"), key)
    # User agents, URLs and payload strings repeat a lot in event data: each distinct value is
    # handled once per run (see TransformCache), then spread back.
    agents = _per_distinct(table.column("user_agent"), lambda values: _families(values, cache))
    urls = _per_distinct(table.column("url"), lambda values: _urls(values, hipaa, cache))
    payloads = _clean_payloads(table.column("payload"), key, hipaa, cache)
    for name, column in (("ip_address", ip), ("user_agent", agents), ("url", urls), ("payload", payloads)):
        table = table.set_column(table.schema.get_field_index(name), name, column)
    result.table = table
    return result


def _families(values: list[str], cache: TransformCache) -> list[str | None]:
    known = cache.room(cache.families)
    for v in values:
        if v not in known:
            known[v] = browser_family(v)
    return [known[v] for v in values]


def _urls(values: list[str], hipaa: bool, cache: TransformCache) -> list[str]:
    known = cache.room(cache.urls[hipaa])
    new = [v for v in values if v not in known]
    if new:
        bare = [u.split("?", 1)[0].split("#", 1)[0] for u in new] if hipaa else new
        for v, r in zip(new, redact_strings(bare, cache), strict=True):
            known[v] = r
    return [known[v] for v in values]


def _per_distinct(column: pa.ChunkedArray, transform) -> pa.Array:
    """`transform` (a list of non-null strings to a list of strings) applied once per distinct
    value of `column`; nulls stay null."""
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    distinct = encoded.dictionary.to_pylist()
    return pa.array(transform(distinct), pa.string()).take(encoded.indices)


_KEEP, _DROP, _PSEUDONYM = 0, 1, 2


def _decide(name: str, hipaa: bool) -> int:
    lower = name.lower()
    if lower in PERSONAL_FIELDS or (hipaa and lower in FREE_TEXT_FIELDS):
        return _DROP
    return _PSEUDONYM if name in USER_ID_FIELDS else _KEEP


def _clean_payloads(column: pa.ChunkedArray | pa.Array, key: bytes, hipaa: bool, cache: TransformCache) -> pa.Array:
    """Each payload with personal fields removed, user ids pseudonymized and the remaining strings
    redacted (each distinct string once per run), written back as JSON with sorted keys."""
    decisions = cache.room(cache.decisions[hipaa])
    pseudonyms = cache.room(cache.pseudonyms)
    strings: set[str] = set()
    has_strings: list[bool] = []

    def clean_dict(value: dict) -> dict:
        out = {}
        for k, v in value.items():
            decision = decisions.get(k)
            if decision is None:
                decision = decisions[k] = _decide(k, hipaa)
            if decision == _DROP:
                continue
            if decision == _PSEUDONYM and v is not None:
                text = str(v)
                out[k] = pseudonyms.get(text) or pseudonyms.setdefault(text, pseudonymize(text, key))
                continue
            kind = type(v)
            if kind is str:
                strings.add(v)
                found[0] = True
            elif kind is dict:
                v = clean_dict(v)
            elif kind is list:
                v = clean_list(v)
            out[k] = v
        return out

    def clean_list(value: list) -> list:
        out = []
        for v in value:
            kind = type(v)
            if kind is str:
                strings.add(v)
                found[0] = True
            elif kind is dict:
                v = clean_dict(v)
            elif kind is list:
                v = clean_list(v)
            out.append(v)
        return out

    found = [False]
    cleaned = []
    for p in column.to_pylist():
        if p is None:
            cleaned.append(None)
            has_strings.append(False)
            continue
        found[0] = False
        cleaned.append(clean_dict(orjson.loads(p)))  # validated JSON objects (raw_events)
        has_strings.append(found[0])
    distinct = list(strings)
    changed = {s: r for s, r in zip(distinct, redact_strings(distinct, cache), strict=True) if r != s}
    out = []
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    for data, with_strings in zip(cleaned, has_strings, strict=True):
        if data is None:
            out.append(None)
            continue
        if changed and with_strings:
            data = _replace(data, changed)
        # orjson hands back each document in a bytes object of at least 4 KB (measured with
        # orjson 3.13: 40 MB for 10,000 payloads of 50 bytes); kept until the column is built,
        # a slice's payloads took tens of MB of heap. Decoded at once, each is a compact str.
        out.append(dumps(data, option=sort).decode())
    return pa.array(out, pa.string())


def _replace(value: Any, redacted: dict[str, str]) -> Any:
    """The strings `_clean_payloads` collected replaced by their redaction (pseudonyms left as
    they are)."""
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
