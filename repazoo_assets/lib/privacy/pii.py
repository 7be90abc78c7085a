"""Find and redact personal data in short social-media text.

One detector serves the redaction of tweets, the prompt guard and the log filter. It is built for
tweets: precise (handles, hashtags, cashtags, t.co links, dates, times, prices and version numbers
stay), fast and linear in the input. Four RE2 patterns find the candidates of every kind (RE2
runs in time linear in the input whatever the pattern: no backtracking, so adversarial input
cannot blow up); handlers then judge only those few candidates: checksums (Luhn, IBAN mod-97),
the shapes of phone numbers and SSNs, word boundaries and context.

This module is the reference. A compiled engine (_pii_fast.c, built at install) gives exactly the
same findings several times faster and is used when importable; `ENGINE` says which runs. How
each kind is recognised, how the engines share the work, and what they measured is in
docs/pii.md.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from typing import NamedTuple

import re2

__all__ = [
    "ENGINE",
    "PII_KINDS",
    "PLACEHOLDERS",
    "Finding",
    "find_pii",
    "find_pii_many",
    "redact",
    "redact_many",
    "redact_many_with_counts",
    "redact_with_counts",
]

PII_KINDS = ("email", "phone", "card", "ip", "iban", "ssn", "secret")
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in PII_KINDS}
_PLACEHOLDER_VALUES = frozenset(PLACEHOLDERS.values())

# When two findings overlap, the more specific kind wins (a card number is also a digit run that
# could look like a phone number; an e-mail address may hold digits that look like a phone).
_PRIORITY = {"secret": 0, "email": 1, "iban": 2, "card": 3, "ssn": 4, "ip": 5, "phone": 6}


class Finding(NamedTuple):
    """One personal datum: its kind and where it is (`text[start:end]`, code-point offsets)."""

    kind: str
    start: int
    end: int


# --- the one scan --------------------------------------------------------------------------------
# Where each kind can start, as named alternatives of one RE2 pattern. The alternatives have no
# counted repetitions ({m,n}): counters multiply the states of RE2's DFA and push it back to its
# slow NFA (measured: 5 MB/s with counters, well over 100 MB/s without). The precise, bounded
# shape of each kind is then checked by a handler at that one position. Inner groups are all
# non-capturing, so `Match.lastgroup` names the alternative that matched.
_SECRET_PREFIXES = (
    r"sk-[A-Za-z0-9_-]|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]|gh[pousr]_|github_pat_|xox[abposrce]-|"
    r"hooks\.slack\.com/|(?:sk|rk)_(?:live|test)_|whsec_|AIza|ya29\.|GOCSPX-|eyJ|-----BEGIN"
)
_KEYWORDS = (  # "password: hunter2", "pwd=...", "API_KEY = '...'", "my password is hunter2"
    r"client[ _-]?secret|api[ _-]?key|access[ _-]?token|auth[ _-]?token|"
    r"password|passwd|passphrase|passcode|pwd|pin|secret|token"
)
# Longest first, so "com" is preferred to "co".
_TLDS = "|".join(
    sorted(
        "com org net edu gov io co uk de fr es it nl be ch at se no dk fi pl pt ie eu us ca au info "
        "biz me app dev ai".split(),
        key=len,
        reverse=True,
    )
)
_DOT = r"(?:[ \t]*\.[ \t]*|[ \t]*[\[({<][ \t]*dot[ \t]*[\])}>][ \t]*|[ \t]+dot[ \t]+)"
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
    "UA": 29, "VG": 24, "XK": 20,
}
_IBAN_COUNTRIES = frozenset(_IBAN_LENGTHS)
_CANDIDATES = {
    "secret": _SECRET_PREFIXES,
    "bearer": r"(?:[Bb]earer|BEARER)[ \t]+[A-Za-z0-9._~+/-]",
    "assign": rf"(?i:{_KEYWORDS})[ \t]*(?:[:=]|[ \t](?i:is|was)[ \t])",
    # "jane[at]example.com", "jane (at) example (dot) com", "jane dot doe at gmail dot com",
    # "jane.doe @ gmail.com": found from the separator on; the local part is read backwards.
    "email_obf": (
        r"(?i:(?:[\[({<][ \t]*at[ \t]*[\])}>][ \t]*|[ \t\n](?:at|@)[ \t]+)"
        rf"[a-z0-9][a-z0-9-]*(?:{_DOT}[a-z0-9-]+)*{_DOT}(?:{_TLDS}))"
    ),
    "email": r"@[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z]+",
    # Only the country codes that have IBANs, then four more characters.
    "iban": rf"(?:{'|'.join(sorted(_IBAN_COUNTRIES))})[0-9][0-9] ?[A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9]",
    # A "::" somewhere, or at least five colons between hex groups ("10:30:45" is a time).
    "ipv6": (
        r"[0-9A-Fa-f]*(?::[0-9A-Fa-f]+)*::[0-9A-Fa-f:.]*|"
        r"[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f:.]+"
    ),
    "ipv4": r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+",
    # A run of digits and the separators people type inside numbers (phones, cards, SSNs), with
    # at least nine digits: shorter runs (dates, prices, versions, scores, times) never match.
    "number": r"[+(]?[0-9](?:[\-. ()/]*[0-9]){8}(?:[0-9\-. ()/]*[0-9])?\)?",
}
# Four RE2 passes over the text (or batch of texts). Kinds that can overlap (an IPv4 address
# glued to a handle's digits, a phone number inside what looked like an IP, an e-mail address
# around a digit run) are in different passes, so one kind's candidate never hides another's.
# Patterns have no groups: a match of a pattern with groups costs RE2's Python wrapper much more,
# and the handler can tell the kinds of a pass apart by the first characters of the match.
_PASSES = (
    ("secret", "bearer", "assign"),
    ("email", "email_obf"),
    ("iban", "ipv6", "number"),
    ("ipv4",),
)
_ANY = re2.compile("|".join(f"(?:{pattern})" for pattern in _CANDIDATES.values()))
_PASS_PATTERNS = tuple(re2.compile("|".join(f"(?:{_CANDIDATES[kind]})" for kind in kinds)) for kinds in _PASSES)


def _word_before(text: str, start: int) -> bool:
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")


def _ends_word(text: str, end: int) -> bool:
    return end == len(text) or not (text[end].isalnum() or text[end] in "_-")


# --- secrets: provider keys, tokens, private keys, password assignments ---------------------------
_SECRET = re.compile(
    "|".join(
        (
            r"sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{20,300}",  # Anthropic
            r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,300}",  # OpenAI
            r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS access key id
            r"gh[pousr]_[A-Za-z0-9]{36,255}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{22,255}",
            r"xox[abposrce]-[A-Za-z0-9-]{10,250}",  # Slack tokens
            r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,200}",  # Slack webhooks
            r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}",  # Stripe secret and restricted keys
            r"whsec_[A-Za-z0-9]{24,200}",  # Stripe webhook secret
            r"AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",  # Google API key
            r"ya29\.[0-9A-Za-z_-]{20,2048}",  # Google OAuth access token
            r"GOCSPX-[A-Za-z0-9_-]{28}",  # Google OAuth client secret
            r"eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,4096}",  # JWT
            # PEM private key: header, then the base64 body (possessive: no backtracking), then
            # the footer if present (a tweet may cut the block short).
            r"-----BEGIN[A-Z ]{0,30} PRIVATE KEY-----(?:[A-Za-z0-9+/=\s]|Proc-Type:[^\n\x00]*|DEK-Info:[^\n\x00]*)*+"
            r"(?:-----END[A-Z ]{0,30} PRIVATE KEY-----)?",
        )
    )
)
_BEARER = re.compile(r"(?:[Bb]earer|BEARER)\s+([A-Za-z0-9._~+/-]{16,4096}=*)")


def _secret(text: str, start: int, end: int, out: list[Finding]) -> None:
    m = _SECRET.match(text, start)
    if not m:
        return
    if _word_before(text, start) and not text.startswith(("-----", "hooks."), start):
        return  # inside a longer word ("task-..."): not a key prefix
    out.append(Finding("secret", start, m.end()))


def _bearer(text: str, start: int, end: int, out: list[Finding]) -> None:
    m = _BEARER.match(text, start)
    if m and not _word_before(text, start):
        out.append(Finding("secret", m.start(1), m.end(1)))


_ASSIGN_VALUE = re.compile(r"""\s*(?:"([^"\n\x00]{1,200})"|'([^'\n\x00]{1,200})'|([^\s,;"'<>\x00]{3,200}))""")
_IS_KEYS = ("password", "passwd", "passphrase", "passcode", "pwd", "pin")


_ASSIGN_KEY = re.compile(_CANDIDATES["assign"].replace("(?i:", "(?:"), re.IGNORECASE)


def _assign(text: str, start: int, end: int, out: list[Finding]) -> None:
    if start and text[start - 1].isalnum():
        return  # "spin: ...", "tokens=...": not the keyword on its own ("API_KEY" is)
    key = _ASSIGN_KEY.match(text, start)
    if not key:
        return
    end = key.end()
    if text[end - 1] not in ":=" and not text[start:end].lower().startswith(_IS_KEYS):
        return  # "token is ..." is prose; "password is ..." is a password
    value = _ASSIGN_VALUE.match(text, end)
    if value:
        group = next(g for g in (1, 2, 3) if value.group(g) is not None)
        if value.group(group).rstrip(".!?") in _PLACEHOLDER_VALUES:
            return  # already redacted: redacting twice changes nothing
        out.append(Finding("secret", value.start(group), value.end(group)))


# --- email, plain and obfuscated ----------------------------------------------------------------
# Local parts are read backwards from the '@' (or the spelled-out separator): the text before it
# is reversed and matched from 0, so the scan never has to guess where an address starts.
_LOCAL_REVERSED = re.compile(r"[\w+%-](?:[\w.+%-]{0,63}[\w+%-])?")
_LOCAL_OBFUSCATED_REVERSED = re.compile(
    r"\s{0,3}[\w+%-]{1,64}(?:(?:\s*\.\s*|\s*[\])}>]\s*tod\s*[\[({<]\s*|\s+tod\s+)[\w+%-]{1,64}){0,4}", re.IGNORECASE
)
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])")


def _email(text: str, start: int, end: int, out: list[Finding]) -> None:
    m = _EMAIL_DOMAIN.match(text, start)
    if not m:
        return
    end = m.end()
    local = _LOCAL_REVERSED.match(text[max(0, start - 64) : start][::-1])
    if local:  # no local part: an @handle that happens to be followed by ".com"
        out.append(Finding("email", start - local.end(), end))


# Words that precede " at <domain>" in prose; a spelled-out address has a name there instead.
_NOT_A_LOCAL_PART = frozenset(
    "me us you him her them it we they he she i'm im i'll work works working worked job live lives "
    "living be am is are was were been now here there look looking available meet see stay staying "
    "arrived apply shop buy find sale deals more details seen found hired intern engineer".split()
)


# The candidate's own shape with what RE2 cannot say: the TLD ends the word ("gmail dot com.
# called" is not "... dot ca").
# Bounded (a domain has at most a few labels of at most 63 characters), so backtracking over a
# long candidate stays cheap.
_EMAIL_OBFUSCATED = re.compile(
    r"(?:[\[({<][ \t]*at[ \t]*[\])}>][ \t]*|[ \t\n](?:at|@)[ \t]+)"
    rf"[a-z0-9][a-z0-9-]{{0,62}}(?:{_DOT}[a-z0-9-]{{1,63}}){{0,6}}{_DOT}(?:{_TLDS})(?![\w-])",
    re.IGNORECASE,
)


def _email_obf(text: str, start: int, end: int, out: list[Finding]) -> None:
    precise = _EMAIL_OBFUSCATED.match(text, start)
    if not precise:
        return
    end = precise.end()
    local = _LOCAL_OBFUSCATED_REVERSED.match(text[max(0, start - 160) : start][::-1])
    if not local or not local.group().strip():
        return
    if local.group().strip()[::-1].lower() in _NOT_A_LOCAL_PART:
        return  # "I work at example.com", "meet me at acme.io": prose, not an address
    out.append(Finding("email", start - local.end(), end))


# --- IBAN ------------------------------------------------------------------------------------
_IBAN = re.compile(r"[A-Z][A-Z]\d\d(?:[ ]?[A-Z0-9]){11,30}")


_IBAN_DIGITS = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}


def _iban_valid(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int(moved.translate(_IBAN_DIGITS)) % 97 == 1


def _iban(text: str, start: int, end: int, out: list[Finding]) -> None:
    if text[start : start + 2] not in _IBAN_LENGTHS or _word_before(text, start):
        return
    m = _IBAN.match(text, start)
    if not m:
        return
    raw = m.group()
    compact = raw.replace(" ", "")
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected is None:
        return
    # The candidate may run into the next word ("DE89 3704 0044 0532 0130 00 THANKS"): trim whole
    # space-separated chunks from the right until the length fits the country's.
    while len(compact) > expected and " " in raw:
        raw = raw[: raw.rindex(" ")]
        compact = raw.replace(" ", "")
    if len(compact) > expected:
        raw, compact = raw[:expected], compact[:expected]
    if _iban_valid(compact) and _ends_word(text, start + len(raw)):
        out.append(Finding("iban", start, start + len(raw)))


# --- IPv6 ------------------------------------------------------------------------------------
def _ipv6(text: str, start: int, end: int, out: list[Finding]) -> None:
    s = text[start:end].rstrip(".:")
    if ("::" not in s and s.count(":") < 6) or _word_before(text, start):
        return  # eight groups, or fewer around "::" ("10:30:45" is a time)
    address = s.split("%")[0]
    if sum(c.isalnum() for c in address) < 3:
        return  # "::" or "a::b"-like fragments of code, not addresses
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return
    out.append(Finding("ip", start, start + len(s)))


# --- digit runs: phone numbers, card numbers, SSNs, IPv4 -----------------------------------------
_GROUP = re.compile(r"\d+")
_MAX_GROUPS = 6
_WORDISH_CHARS = frozenset("_$€£¥%#@")

_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_SSN = re.compile(r"(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}")
_CARD = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -]?)\d{6}\2\d{4,5}|\d{13,19}")
_PHONE = re.compile(
    "|".join(
        (
            # International: +CC or 00CC, then groups (a "(0)" trunk marker: +44 (0)20 ...).
            r"(?:\+|00)[1-9]\d{0,3}(?:[ .\-/]?(?:\(0\)[ ]?)?\(?\d{1,5}\)?){1,6}",
            # North American: (555) 123-4567, 555.123.4567, 555-123-4567, 1-555-123-4567.
            r"(?:1[ .\-])?(?:\(\d{3}\)[ ]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}",
            r"[2-9]\d{2}[2-9]\d{6}",
            # European national numbers with a trunk 0: 020 7946 0958, 030/1234567, 06 12 34 56 78.
            r"0\d{1,4}(?:[ .\-/]?\d{2,8}){1,4}",
            r"\(0\d{1,4}\)[ ]?\d{2,8}(?:[ .\-]?\d{2,8}){0,3}",
            # Spanish national numbers (no trunk 0): 612 34 56 78, 91 019 66 72, 612 345 678.
            r"[6-9]\d{2}(?:[ .]\d{2}){3}|[89]\d[ .]\d{3}(?:[ .]\d{2}){2}|[6-9]\d{2}[ .]\d{3}[ .]\d{3}",
        )
    )
)
_DATE_INSIDE = re.compile(r"(?<!\d)(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d|(?:19|20)\d\d[./-]\d{1,2}[./-]\d{1,2})(?!\d)")
_SSN_CONTEXT = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?| #)?|ss#)\W{0,3}\Z")


_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when that is over 9


def _luhn(digits: str) -> bool:
    # Every second digit from the right doubled (by table), then the digit sum, all in C.
    checked = digits[-1::-2] + digits[-2::-2].translate(_DOUBLED)
    return (sum(checked.encode()) - 48 * len(checked)) % 10 == 0


def _digits_only(s: str) -> str:
    return s.encode().translate(None, b"+-. ()/").decode()


def _classify_number(text: str, s0: int, e0: int, n: int) -> str | None:
    """The kind of the number `text[s0:e0]` holding `n` digits, or None when it is an ordinary
    number. Cheap tests on the digit count come first."""
    s = text[s0:e0]
    if n <= 12 and s.count(".") == 3 and _IPV4.fullmatch(s):
        return "ip"
    if n < 9:
        return None
    if n == 9 and (_SSN.fullmatch(s) or (s.isdigit() and _SSN_CONTEXT.search(text, max(0, s0 - 24), s0))):
        return "ssn"
    if 13 <= n <= 19 and _CARD.fullmatch(s) and _luhn(_digits_only(s)):
        return "card"
    if n <= 15 and _PHONE.fullmatch(s):
        international = s.startswith(("+", "00"))
        if not international and (
            (s[0] == "0" and not 9 <= n <= 12) or (("/" in s or "." in s or "-" in s) and _DATE_INSIDE.search(s))
        ):
            return None
        if international and not _international_length_ok(s, n):
            return None
        return "phone"
    return None


# Digits after the country code (the national significant number, without a "(0)" trunk) of the
# countries whose numbers tweets carry most, from the ITU-T E.164 national numbering plans. With
# them "+44 20 7946 0958 20 times" is judged as the number it holds, not with the count after it.
_NSN_LENGTHS = {
    "1": (10, 10), "7": (10, 10), "20": (8, 10), "27": (9, 9), "30": (10, 10), "31": (9, 9),
    "32": (8, 9), "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11), "40": (9, 9),
    "41": (9, 9), "43": (4, 13), "44": (9, 10), "45": (8, 8), "46": (7, 10), "47": (8, 8),
    "48": (9, 9), "49": (6, 13), "52": (10, 10), "55": (10, 11), "61": (9, 9), "81": (9, 10),
    "86": (10, 11), "90": (10, 10), "91": (10, 10), "351": (9, 9), "352": (6, 11), "353": (7, 9),
    "358": (5, 12), "420": (9, 9), "972": (8, 9), "971": (8, 9),
}


def _international_length_ok(s: str, n: int) -> bool:
    digits = _digits_only(s)
    if s[0] == "0":  # "00" international prefix
        digits = digits[2:]
        n -= 2
    if "(0)" in s:
        n -= 1
    for size in (1, 2, 3):
        lengths = _NSN_LENGTHS.get(digits[:size])
        if lengths:
            return lengths[0] <= n - size <= lengths[1]
    return 8 <= n <= 15


def _ipv4(text: str, start: int, end: int, out: list[Finding]) -> None:
    # "root@10.0.0.1" is an address; "v1.2.3.4", "1.2.3.4-beta" and "$1.2.3.4" are not.
    if (start and (text[start - 1].isalnum() or text[start - 1] in "_.$€£¥#-")) or not _ends_word(text, end):
        return
    if _IPV4.fullmatch(text, start, end):
        out.append(Finding("ip", start, end))


# A code of letters and digits just before a run ("IT45 Z313 0677 8356 ..."): the run is the
# rest of that code (an IBAN with a wrong checksum, a reference), not a number of its own.
_FRENCH_PAIRS = re.compile(r"0\d(?:[ .]\d\d){4}")
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_CODE_BEFORE = re.compile(
    r"(?<![\w-])(?:[A-Z]{2}\d\d(?: [A-Z0-9]{4}){0,7}|(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z0-9]{4}) \Z"
)


def _number(text: str, start: int, end: int, out: list[Finding]) -> None:
    if end < len(text) and (text[end].isalnum() or text[end] in "_@"):
        return
    if start and (text[start - 1] in _WORDISH_CHARS or text[start - 1].isalnum()):
        # Glued to a word, amount or hashtag ("A1234567", "$1299.00", "#2024"): that first group
        # is not personal data, but what follows a separator may be ("@bot329 192.168.1.1").
        glued = _GROUP.match(text, start)
        start = glued.end() if glued else start + 1
        while start < end and not text[start].isdigit() and text[start] not in "+(":
            start += 1
        if start >= end or text[start - 1] not in " /":
            return
    if start > 4 and text[start - 1] == " " and text[start - 2] in _CODE_CHARS:
        if _CODE_BEFORE.search(text, max(0, start - 48), start):
            return
    run = text[start:end]
    n = len(_digits_only(run))
    kind = _classify_number(text, start, end, n)
    if kind:  # the usual case: the run is one number
        if kind == "phone" and run[0] == "0" and run[1] != "0" and not _FRENCH_PAIRS.fullmatch(run):
            # "called 055 232 3097 35 times": a short last group after a space that the number
            # does not need is a count, not part of it.
            head, _, tail = run.rpartition(" ")
            if head and len(tail) <= 3 and _classify_number(text, start, start + len(head), n - len(tail)):
                end = start + len(head)
        out.append(Finding(kind, start, end))
        return
    if 13 <= n <= 19 and _CARD.fullmatch(run):
        return  # shaped like a card but not Luhn-valid: an order, member or gift-card number
    # The run may join several numbers ("call 555-123-4567 2 times", "(555-123-4567)"): try spans
    # of whole digit groups, longest first from each group, so each number is judged on its own.
    groups = [m.span() for m in _GROUP.finditer(text, start, end)]
    last = len(groups) - 1
    digits = [0]  # digits[k]: how many digits the first k groups hold
    for s, e in groups:
        digits.append(digits[-1] + e - s)
    i = 0
    while i <= last:
        # No number people write has more than six digit groups ("+33 1 23 45 67 89").
        for j in range(min(last, i + _MAX_GROUPS - 1), i - 1, -1):
            n = digits[j + 1] - digits[i]
            if n < 9 or n > 19:
                continue  # too short or too long to be anything but an ordinary number
            if (i > 0 and text[groups[i][0] - 1] not in " /(+") or (
                j < last and text[groups[j][1]] not in " /)"
            ):
                continue  # a hyphen or dot joins parts of one code ("112-0098906-5229825")
            kind = None
            for s0 in (start, groups[0][0]) if i == 0 and start < groups[0][0] else (groups[i][0],):
                for e0 in (end, groups[j][1]) if j == last and end > groups[j][1] else (groups[j][1],):
                    if (s0, e0) != (start, end):
                        kind = _classify_number(text, s0, e0, n)
                        if kind:
                            out.append(Finding(kind, s0, e0))
                            break
                if kind:
                    break
            if kind:
                i = j
                break
        i += 1


# --- all together ------------------------------------------------------------------------------
def _letters(text: str, start: int, end: int, out: list[Finding]) -> None:
    """A candidate of the first pass: a key, a bearer token or a password assignment."""
    before = len(out)
    for handler in (_secret, _bearer, _assign):
        handler(text, start, end, out)
        if len(out) > before:
            return


def _emails(text: str, start: int, end: int, out: list[Finding]) -> None:
    """A candidate of the second pass: an address from its '@', or a spelled-out separator."""
    (_email if text[start] == "@" else _email_obf)(text, start, end, out)


def _digits(text: str, start: int, end: int, out: list[Finding]) -> None:
    """A candidate of the third pass: an IPv6 address, an IBAN or a run of digits."""
    if ":" in text[start:end]:
        _ipv6(text, start, end, out)
    elif text[start].isupper() and text[start + 1].isupper():
        _iban(text, start, end, out)
    else:
        _number(text, start, end, out)


_SCANS = tuple(
    zip(_PASS_PATTERNS, (_letters, _emails, _digits, _ipv4), strict=True)
)
assert sorted(kind for kinds in _PASSES for kind in kinds) == sorted(_CANDIDATES)


def _normalization_table() -> dict[int, str]:
    """Non-ASCII characters that mean the same in personal data as an ASCII one: any decimal
    digit (full-width "０３０", Arabic-Indic), any space (no-break and thin spaces inside phone
    numbers), full-width and typographic punctuation. One character for one character, so
    offsets in the normalized text are offsets in the original."""
    table = {}
    for code in range(0x80, 0x10000):
        ch = chr(code)
        if ch.isdecimal() and unicodedata.decimal(ch, None) is not None:
            table[code] = str(unicodedata.decimal(ch))
        elif unicodedata.category(ch) == "Zs":
            table[code] = " "
    for chars, ascii_char in (("‐‑‒–—−－", "-"), ("＠", "@"), ("．", "."), ("＋", "+"), ("（", "("), ("）", ")"), ("／", "/"), ("：", ":"), ("＝", "=")):
        for ch in chars:
            table[ord(ch)] = ascii_char
    return table


_NORMALIZE = _normalization_table()
# Only the characters the table maps: they are rare, so the substitution costs next to nothing.
_TO_NORMALIZE = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(_NORMALIZE)) + "]")


def _normalize_char(m: re.Match[str]) -> str:
    return _NORMALIZE[ord(m.group())]


def _prepare(text: str) -> tuple[str, bytes]:
    """The text the handlers judge, and the bytes RE2 scans: one byte per character (other
    characters become '?'), so byte offsets are character offsets and the scan never needs
    RE2's byte-to-character bookkeeping."""
    if text.isascii():
        return text, text.encode("ascii")
    normalized = _TO_NORMALIZE.sub(_normalize_char, text)
    return normalized, normalized.encode("ascii", "replace")


def _merge(found: list[Finding]) -> list[Finding]:
    """Overlapping findings merged into one covering both, of the more specific kind: nothing a
    finding covered is ever left out ("+1 4111 1111 1111 1111" stays redacted end to end)."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, f.end))
    merged: list[Finding] = [found[0]]
    for f in found[1:]:
        last = merged[-1]
        if f.start < last.end:
            kind = f.kind if _PRIORITY[f.kind] < _PRIORITY[last.kind] else last.kind
            merged[-1] = Finding(kind, last.start, max(last.end, f.end))
        else:
            merged.append(f)
    return merged


def _check(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")


def find_pii(text: str) -> list[Finding]:
    """Every personal datum in `text`, as non-overlapping findings sorted by position."""
    _check(text)
    if not text:
        return []
    if _fast is not None:
        return _fast.find_many((text,))[0]
    if _ANY.search(_prepare(text)[1]) is None:
        return []  # most texts: one pass of RE2 and nothing to judge
    return _find_pii_many_python((text,))[0]


# Between texts of a batch: no pattern crosses it (no class holds NUL), and it is longer than
# any context a handler looks at ("SSN: " before nine digits).
_SEPARATOR = "\x00" * 4


def find_pii_many(texts: Sequence[str]) -> list[list[Finding]]:
    """`find_pii` of each text, found in one scan per kind over the whole batch: the fast path
    for pipelines, which handle tweets by the thousand."""
    for text in texts:
        _check(text)
    if not texts:
        return []
    if _fast is not None:
        return _fast.find_many(texts)
    return _find_pii_many_python(texts)


def _find_pii_many_python(texts: Sequence[str]) -> list[list[Finding]]:
    """The pure-Python engine: the reference the compiled one is tested against, and the
    fallback when the compiled one is not importable. `texts` is a non-empty sequence of str."""
    normalized, data = _prepare(_SEPARATOR.join(texts))
    found: list[Finding] = []
    for pattern, handler in _SCANS:
        for m in pattern.finditer(data):
            handler(normalized, *m.span(), found)
    results: list[list[Finding]] = [[] for _ in texts]
    if not found:
        return results
    starts = list(itertools.accumulate((len(t) + len(_SEPARATOR) for t in texts[:-1]), initial=0))
    for f in _merge(found):
        i = bisect.bisect_right(starts, f.start) - 1
        offset = starts[i]
        results[i].append(Finding(f.kind, f.start - offset, min(f.end - offset, len(texts[i]))))
    return results


def _apply(text: str, findings: list[Finding]) -> tuple[str, dict[str, int]]:
    if not findings:
        return text, {}
    parts: list[str] = []
    counts: dict[str, int] = {}
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(PLACEHOLDERS[f.kind])
        counts[f.kind] = counts.get(f.kind, 0) + 1
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), counts


def redact_many(texts: Sequence[str]) -> list[str]:
    """`redact` of each text, in one batch (see `find_pii_many`)."""
    if _fast is not None:
        return _fast.apply_many(texts, find_pii_many(texts), False)
    return [_apply(text, findings)[0] for text, findings in zip(texts, find_pii_many(texts), strict=True)]


def redact_many_with_counts(texts: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
    """`redact_with_counts` of each text, in one batch."""
    if _fast is not None:
        return _fast.apply_many(texts, find_pii_many(texts), True)
    return [_apply(text, findings) for text, findings in zip(texts, find_pii_many(texts), strict=True)]


def redact_with_counts(text: str) -> tuple[str, dict[str, int]]:
    """`text` with every finding replaced by its placeholder, and how many of each kind."""
    if _fast is not None:
        return _fast.apply_many((text,), (find_pii(text),), True)[0]
    return _apply(text, find_pii(text))


def redact(text: str) -> str:
    """`text` with each personal datum replaced by a typed placeholder such as `[EMAIL]`."""
    return redact_with_counts(text)[0]


# --- the engine ---------------------------------------------------------------------------------
# The compiled engine (_pii_fast.c, built by `pip install -e .`) gives exactly the findings of the
# Python one above, several times faster: it runs the four scans and judges the frequent
# candidates in C, and calls the handlers above for the rare ones. REPAZOO_PII_ENGINE=python
# selects the Python engine (to compare the two); without a built extension it is the fallback.
def _load_engine() -> tuple[object | None, str]:
    if os.environ.get("REPAZOO_PII_ENGINE", "").strip().lower() == "python":
        return None, "python"
    try:
        from repazoo_assets.lib.privacy import _pii_fast

        # Refused (ImportError) in a subinterpreter when another interpreter configured it: the
        # module keeps process-wide tables. A configure() that fails otherwise leaves the compiled
        # engine refusing to run, so the Python engine takes over in both cases.
        _pii_fast.configure(
            normalize=_NORMALIZE,
            iban_lengths=_IBAN_LENGTHS,
            tlds=_TLDS.split("|"),
            nsn_lengths=_NSN_LENGTHS,
            kinds=PII_KINDS,
            priority=_PRIORITY,
            finding=Finding,
            handlers=(_letters, _emails, _digits, _ipv4),
            separator=_SEPARATOR,
            placeholders=PLACEHOLDERS,
            prose_words=sorted(_NOT_A_LOCAL_PART),
        )
    except (ImportError, TypeError, ValueError) as exc:
        logging.getLogger(__name__).warning(
            "PII detector: the compiled engine is not usable (%s: %s); using the pure-Python "
            "engine, about four times slower. Rebuild it with `pip install -e .`",
            type(exc).__name__,
            exc,
        )
        return None, "python"
    return _pii_fast, "compiled"


_fast, ENGINE = _load_engine()
"""Which engine runs: "compiled" (the C extension) or "python" (the fallback and reference)."""
