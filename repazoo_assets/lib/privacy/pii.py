"""Find and redact personal data in short social-media text.

One detector serves the redaction of tweets, the prompt guard and the log filter. It is built for
tweets: precise (handles, hashtags, cashtags, t.co links, dates, times, prices and version numbers
stay), fast (a handful of precompiled scans whose first character is a character class, so the
regex engine skips ahead in C; Python only sees the few candidates) and linear in the input
(bounded or possessive repetitions only, so adversarial input cannot make it backtrack).

How each kind is recognised, and what it measured, is in docs/pii.md.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["PII_KINDS", "PLACEHOLDERS", "Finding", "find_pii", "redact", "redact_with_counts"]

PII_KINDS = ("email", "phone", "card", "ip", "iban", "ssn", "secret")
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in PII_KINDS}

# When two findings overlap, the more specific kind wins (a card number is also a digit run that
# could look like a phone number; an IP inside a URL with credentials is still a secret).
_PRIORITY = {"secret": 0, "email": 1, "iban": 2, "card": 3, "ssn": 4, "ip": 5, "phone": 6}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.kind not in PLACEHOLDERS or not 0 <= self.start < self.end:
            raise ValueError(f"invalid finding {self.kind!r} [{self.start}, {self.end})")


# --- digit runs: phone numbers, card numbers, SSNs, IPv4 -----------------------------------------
# A candidate run: starts with a digit, '+' or '(' and holds digits and the separators people type
# inside numbers. Bounded, so a megabyte of digits is scanned in slices, never backtracked over.
_RUN = re.compile(r"[+(\d][\d\-. ()/]{5,60}\d\)?")
_GROUP = re.compile(r"\d+")
_WORDISH = re.compile(r"[\w$€£¥%#@]")

_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_SSN = re.compile(r"(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}")
_CARD = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -]?)\d{6}\2\d{4,5}|\d{13,19}")
_PHONE_FORMATS = (
    # International: +CC or 00CC, then groups (a "(0)" trunk marker is allowed: +44 (0)20 ...).
    re.compile(r"(?:\+|00)[1-9]\d{0,3}(?:[ .\-/]?(?:\(0\)[ ]?)?\(?\d{1,5}\)?){1,6}"),
    # North American: (555) 123-4567, 555.123.4567, 555-123-4567, 1-555-123-4567, 5551234567.
    re.compile(r"(?:1[ .\-])?(?:\(\d{3}\)[ ]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}"),
    re.compile(r"[2-9]\d{2}[2-9]\d{6}"),
    # European national numbers with a trunk 0: 020 7946 0958, 030/1234567, 06 12 34 56 78, ...
    re.compile(r"0\d{1,4}(?:[ .\-/]?\d{2,8}){1,4}"),
    re.compile(r"\(0\d{1,4}\)[ ]?\d{2,8}(?:[ .\-]?\d{2,8}){0,3}"),
)
_DATE_INSIDE = re.compile(r"(?<!\d)(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d|(?:19|20)\d\d[./-]\d{1,2}[./-]\d{1,2})(?!\d)")
_SSN_CONTEXT = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?| #)?|ss#)\W{0,3}$")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _classify_number(s: str, before: str) -> str | None:
    """The kind of a whole candidate substring `s`, or None when it is an ordinary number."""
    digits = re.sub(r"\D", "", s)
    n = len(digits)
    if _IPV4.fullmatch(s):
        return "ip"
    if n == 9 and (_SSN.fullmatch(s) or (s.isdigit() and _SSN_CONTEXT.search(before))):
        return "ssn"
    if 13 <= n <= 19 and _CARD.fullmatch(s) and _luhn(digits):
        return "card"
    if 8 <= n <= 15:
        if _DATE_INSIDE.search(s) and not s.startswith(("+", "00")):
            return None
        for pattern in _PHONE_FORMATS:
            if pattern.fullmatch(s):
                if s[0] == "0" and not s.startswith("00") and not 9 <= n <= 12:
                    return None
                if s.startswith(("+", "00")) and not 8 <= n - (2 if s.startswith("00") else 0) <= 15:
                    return None
                return "phone"
    return None


def _number_findings(text: str, out: list[Finding]) -> None:
    for run in _RUN.finditer(text):
        start, end = run.span()
        if start and _WORDISH.match(text, start - 1):
            continue  # part of a word, code, amount or hashtag: "A1234567", "$1299.00", "#2024"
        if end < len(text) and (text[end].isalnum() or text[end] in "_@"):
            continue
        # The run may join several numbers ("call 555-123-4567 2 times"): try spans of whole digit
        # groups, longest first from each group, so each number is judged on its own.
        groups = [m.span() for m in _GROUP.finditer(text, start, end)]
        i = 0
        while i < len(groups):
            for j in range(len(groups) - 1, i - 1, -1):
                s0 = groups[i][0]
                if i == 0 and start < s0:
                    s0 = start  # a leading '+' or '('
                e0 = groups[j][1]
                kind = _classify_number(text[s0:e0], text[max(0, s0 - 24) : s0])
                if kind:
                    out.append(Finding(kind, s0, e0))
                    i = j
                    break
            i += 1


# --- IBAN ------------------------------------------------------------------------------------
_IBAN = re.compile(r"[A-Z][A-Z]\d\d(?:[ ]?[A-Z0-9]){11,30}")
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


def _iban_valid(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban_findings(text: str, out: list[Finding]) -> None:
    for m in _IBAN.finditer(text):
        start, end = m.span()
        if start and text[start - 1].isalnum():
            continue
        raw = m.group()
        # The match may run into the next word ("DE89 3704 0044 0532 0130 00 THANKS"): trim whole
        # space-separated chunks from the right until the length fits the country's.
        compact = raw.replace(" ", "")
        expected = _IBAN_LENGTHS.get(compact[:2])
        if expected is None:
            continue
        while len(compact) > expected and " " in raw:
            raw = raw[: raw.rindex(" ")]
            compact = raw.replace(" ", "")
        if len(compact) > expected:
            raw, compact = raw[: expected], compact[:expected]
        if _iban_valid(compact):
            out.append(Finding("iban", start, start + len(raw)))


# --- email, plain and obfuscated ----------------------------------------------------------------
_TLD = r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|pt|ie|eu|us|ca|au|info|biz|me|app|dev|ai)"
# After '@': a domain with at least one dot and an alphabetic TLD.
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])")
# Local part read backwards from the '@': the string before '@' is reversed and matched from 0.
_LOCAL_REVERSED = re.compile(r"[\w+%-](?:[\w.+%-]{0,63}[\w+%-])?")
_DOT = r"(?:\s*\.\s*|\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
# Obfuscated: "jane[at]example.com", "jane (at) example (dot) com", "jane dot doe at gmail dot com",
# "jane.doe @ gmail.com". The scan starts on the separator's first character (a bracket or space).
_EMAIL_OBFUSCATED = re.compile(
    r"[\s\[({<](?:(?<=[\[({<])\s*at\s*[\])}>]\s*|(?<=\s)(?:at|@)\s+)"
    r"[a-z0-9](?:[a-z0-9-]{0,62})(?:" + _DOT + r"[a-z0-9-]{1,63}){0,4}" + _DOT + _TLD + r"(?![\w-])",
    re.IGNORECASE,
)
_LOCAL_OBFUSCATED_REVERSED = re.compile(
    r"\s{0,3}[\w+%-]{1,64}(?:(?:\s*\.\s*|\s*[\])}>]\s*tod\s*[\[({<]\s*|\s+tod\s+)[\w+%-]{1,64}){0,4}", re.IGNORECASE
)


def _email_findings(text: str, out: list[Finding]) -> None:
    if "@" in text:
        for m in _EMAIL_DOMAIN.finditer(text):
            at = m.start()
            local = _LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
            if local:  # no local part: an @handle that happens to be followed by ".com"
                out.append(Finding("email", at - local.end(), m.end()))
    for m in _EMAIL_OBFUSCATED.finditer(text):
        sep = m.start()
        window = text[max(0, sep - 160) : sep][::-1]
        local = _LOCAL_OBFUSCATED_REVERSED.match(window)
        if local:
            out.append(Finding("email", sep - local.end(), m.end()))


# --- secrets: provider keys, tokens, private keys, password assignments ---------------------------
# Every alternative starts with a literal character, so the engine can skip to candidates.
_SECRET = re.compile(
    "|".join(
        (
            r"sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{20,200}",  # Anthropic
            r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}",  # OpenAI
            r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",  # AWS access key id
            r"gh[pousr]_[A-Za-z0-9]{36,255}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{22,255}",
            r"xox[abposrce]-[A-Za-z0-9-]{10,250}",  # Slack tokens
            r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,200}",  # Slack webhooks
            r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}",  # Stripe secret and restricted keys
            r"whsec_[A-Za-z0-9]{24,}",  # Stripe webhook secret
            r"AIza[0-9A-Za-z_-]{35}",  # Google API key
            r"ya29\.[0-9A-Za-z_-]{20,2048}",  # Google OAuth access token
            r"GOCSPX-[A-Za-z0-9_-]{28}",  # Google OAuth client secret
            r"eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,4096}",  # JWT
            # PEM private key: header, then the base64 body (possessive: no backtracking), then the
            # footer if present (a tweet may cut the block short).
            r"-----BEGIN[A-Z ]{0,30} PRIVATE KEY-----(?:[A-Za-z0-9+/=\s]|Proc-Type:[^\n]*|DEK-Info:[^\n]*)*+"
            r"(?:-----END[A-Z ]{0,30} PRIVATE KEY-----)?",
        )
    )
)
_BEARER = re.compile(r"[Bb](?:earer|EARER)\s+([A-Za-z0-9._~+/-]{16,4096}=*)")
# "password: hunter2", "pwd=...", "API_KEY = '...'", "my password is hunter2": the value is the
# secret, the word before it stays. Found from the separator backwards, so the scan is cheap.
_ASSIGN_SEP = re.compile(r"[:=]|\s(?:is|was)\s", re.IGNORECASE)
_ASSIGN_KEY_REVERSED = re.compile(
    r"\s{0,3}(?:drowssap|dwssap|dwp|esarhpssap|edocssap|nip|terces(?:_tneilc|-tneilc| tneilc)?|"
    r"yek(?:_?ipa|-ipa| ipa)|nekot(?:_?htua|_?sseca|-sseca| sseca)?)(?![A-Za-z])",
    re.IGNORECASE,
)
_ASSIGN_VALUE = re.compile(r"""\s*(?:"([^"\n]{1,200})"|'([^'\n]{1,200})'|([^\s,;"'<>]{3,200}))""")
_IS_KEYS = ("drowssap", "dwssap", "dwp", "esarhpssap", "nip")


def _secret_findings(text: str, out: list[Finding]) -> None:
    for m in _SECRET.finditer(text):
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_"):
            continue  # inside a longer word ("task-..."): not a key prefix
        out.append(Finding("secret", m.start(), m.end()))
    for m in _BEARER.finditer(text):
        out.append(Finding("secret", m.start(1), m.end(1)))
    for m in _ASSIGN_SEP.finditer(text):
        key = _ASSIGN_KEY_REVERSED.match(text[max(0, m.start() - 20) : m.start()][::-1])
        if not key:
            continue
        if m.group()[0] not in ":=" and not key.group().strip().lower().startswith(_IS_KEYS):
            continue  # "token is ..." is prose; "password is ..." is a password
        value = _ASSIGN_VALUE.match(text, m.end())
        if value:
            group = next(g for g in (1, 2, 3) if value.group(g) is not None)
            out.append(Finding("secret", value.start(group), value.end(group)))


# --- IPv6 ------------------------------------------------------------------------------------
_IPV6 = re.compile(r"[0-9A-Fa-f:][0-9A-Fa-f:.]{1,44}")


def _ipv6_findings(text: str, out: list[Finding]) -> None:
    if "::" not in text and text.count(":") < 3:
        return
    for m in _IPV6.finditer(text):
        s = m.group().rstrip(".")
        if s.count(":") < 2 or (s.count(":") < 3 and "::" not in s):
            continue
        start = m.start()
        if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
            continue
        s = s.split("%")[0]
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            continue
        if sum(c.isalnum() for c in s) < 3:
            continue  # "::" or "a::b"-like fragments of code, not addresses
        out.append(Finding("ip", start, start + len(s)))


# --- all together ------------------------------------------------------------------------------
_SCANNERS = (_secret_findings, _email_findings, _iban_findings, _number_findings, _ipv6_findings)


def find_pii(text: str) -> list[Finding]:
    """Every personal datum in `text`, as non-overlapping findings sorted by position."""
    if not isinstance(text, str):
        raise TypeError(f"find_pii expects str, got {type(text).__name__}")
    if not text:
        return []
    found: list[Finding] = []
    for scan in _SCANNERS:
        scan(text, found)
    if len(found) < 2:
        return found
    # Resolve overlaps: earliest first; on overlap keep the more specific kind, then the longer.
    found.sort(key=lambda f: (f.start, _PRIORITY[f.kind], -f.end))
    kept: list[Finding] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            last = kept[-1]
            if (_PRIORITY[f.kind], -(f.end - f.start)) < (_PRIORITY[last.kind], -(last.end - last.start)):
                kept[-1] = f
            continue
        kept.append(f)
    return kept


def redact_with_counts(text: str) -> tuple[str, dict[str, int]]:
    """`text` with every finding replaced by its placeholder, and how many of each kind."""
    findings = find_pii(text)
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


def redact(text: str) -> str:
    """`text` with each personal datum replaced by a typed placeholder such as `[EMAIL]`."""
    return redact_with_counts(text)[0]
