"""A labelled, synthetic tweet corpus for the PII-detection benchmark (bench/pii.py).

Every case is a tweet-like text (at most 280 code points) with the exact span of every personal
datum in it and of every public item that a redactor must leave alone. The corpus is built here,
from the documented shapes of each format, and owes nothing to the detector it measures nor to the
project's demo generator:

- payment cards: issuer prefixes of Visa, Mastercard (51-55 and 2221-2720), American Express
  (34, 37; 15 digits grouped 4-6-5) and Discover (6011, 644-649, 65); the last digit is the Luhn
  (ISO/IEC 7812-1) check digit, computed below;
- IBANs: ISO 13616 layouts for DE, GB, FR, ES, NL, IT and CH with mod-97 (ISO 7064) check digits
  computed below, plus the national check digits where a country has them (FR RIB key, ES DC,
  IT CIN, NL 11-test), printed compact and in groups of four;
- phone numbers: E.164 and the national written forms of the US (NANP), UK, Germany, France,
  Spain, Italy and the Netherlands;
- US SSNs in the issued ranges (area 001-899 but not 666, group 01-99, serial 0001-9999);
- IPv4, IPv6 (full, RFC 5952 compressed, IPv4-mapped, bracketed with a port);
- e-mail addresses, plain (plus-addressing, sub-domains, upper case) and as people obfuscate them;
- secrets in each provider's published shape, JWTs (RFC 7519), bearer tokens (RFC 6750), PEM
  private keys (RFC 7468) and password assignments. A secret's span is the secret material only:
  the whole token for provider keys (their fixed prefix included), the path of a Slack webhook URL
  after ".../services/", the token after "Bearer", the base64 body of a PEM block (not its BEGIN
  and END lines), the value of an assignment (its key word, such as "password", is a public item).

Public items that must survive: @handles, #hashtags, $cashtags, t.co links, numbers, dates, times,
prices, versions, scores, years, order numbers that fail Luhn, IBAN-like strings whose check digits
are wrong, 16-digit numbers that fail Luhn, and the key word of a password assignment.

Deterministic: one seeded `random.Random`, no clock, no network, no set iteration.
Run `python bench/pii_corpus.py --show 10` to see a summary and a few cases with their spans.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import ipaddress
import json
import random
import re
import string
import sys
from collections import Counter
from dataclasses import dataclass

__all__ = ["PII_KINDS", "PUBLIC_CATEGORIES", "Item", "Case", "build_corpus", "fingerprint", "validate"]

PII_KINDS = ("email", "phone", "card", "ip", "iban", "ssn", "secret")
PUBLIC_CATEGORIES = (
    "handle",
    "hashtag",
    "cashtag",
    "link",
    "number",
    "date",
    "time",
    "price",
    "version",
    "score",
    "year",
    "order_number",
    "bad_iban",
    "non_luhn_16",
    "secret_keyword",
)
MAX_LEN = 280
DEFAULT_SEED = 20240315
DEFAULT_CASES = 1200
NO_PII_SHARE = 0.4  # at least a third of the cases hold no personal datum at all


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled span: a PII item (`kind` in PII_KINDS) or a public one (a PUBLIC_CATEGORIES)."""

    kind: str
    fmt: str  # the written form, e.g. "uk_intl_trunk" for "+44 (0)20 7946 0958"
    start: int
    end: int  # exclusive, in str code points


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    text: str
    pii: tuple[Item, ...]
    public: tuple[Item, ...]


# A segment of text: (text, kind or None, fmt, is_pii).
Seg = tuple[str, "str | None", "str | None", bool]


def _plain(text: str) -> Seg:
    return (text, None, None, False)


def _pii(kind: str, fmt: str, text: str) -> Seg:
    return (text, kind, fmt, True)


def _pub(cat: str, fmt: str, text: str) -> Seg:
    return (text, cat, fmt, False)


# --- check digits -----------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes payload + digit pass Luhn."""
    for d in "0123456789":
        if luhn_valid(payload + d):
            return d
    raise AssertionError("unreachable")


def _iban_numeric(s: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in s))


def iban_valid(compact: str) -> bool:
    return _iban_numeric(compact[4:] + compact[:4]) % 97 == 1


def iban_from_bban(country: str, bban: str) -> str:
    check = 98 - _iban_numeric(bban + country + "00") % 97
    return f"{country}{check:02d}{bban}"


def _fr_rib_key(bank: str, branch: str, account: str) -> str:
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def _es_dc(bank: str, branch: str, account: str) -> str:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)

    def digit(ten: str) -> str:
        d = 11 - sum(int(c) * w for c, w in zip(ten, weights)) % 11
        return "0" if d == 11 else "1" if d == 10 else str(d)

    return digit("00" + bank + branch) + digit(account)


_IT_ODD = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23)


def _it_cin(rest: str) -> str:
    total = 0
    for i, ch in enumerate(rest):
        v = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _IT_ODD[v] if i % 2 == 0 else v
    return chr(65 + total % 26)


# --- random helpers ---------------------------------------------------------------------------
_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_B64URL = _ALNUM + "-_"


def _digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


class _Cycle:
    """Shuffled round-robin: every entry comes up once before any comes up twice."""

    def __init__(self, rng: random.Random, entries) -> None:
        self.rng, self.entries, self.queue = rng, list(entries), []

    def next(self):
        if not self.queue:
            self.queue = self.entries[:]
            self.rng.shuffle(self.queue)
        return self.queue.pop()


# --- e-mail -----------------------------------------------------------------------------------
FIRST = (
    "jane",
    "john",
    "maria",
    "lucas",
    "sofia",
    "ahmed",
    "yuki",
    "olivia",
    "liam",
    "emma",
    "noah",
    "mia",
    "lena",
    "pierre",
    "giulia",
    "pablo",
    "sven",
    "anna",
    "omar",
    "chloe",
    "david",
    "sara",
    "tom",
    "nina",
    "kofi",
    "priya",
)
LAST = (
    "doe",
    "smith",
    "garcia",
    "muller",
    "rossi",
    "dubois",
    "jansen",
    "kowalski",
    "nguyen",
    "tanaka",
    "okafor",
    "silva",
    "brown",
    "martin",
    "schmidt",
    "lopez",
    "ferrari",
    "bakker",
    "wilson",
    "khan",
)
DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.co.uk",
    "proton.me",
    "icloud.com",
    "gmx.de",
    "web.de",
    "orange.fr",
    "libero.it",
    "ziggo.nl",
    "example.com",
    "example.org",
    "acme-corp.io",
    "startup.dev",
    "company.eu",
)
SUBDOMAINS = (
    "mail.acme-corp.com",
    "eu.support.example.com",
    "cs.stanford.edu",
    "students.uni-berlin.de",
    "dept.example.co.uk",
    "lists.example.org",
    "hr.bigbank.fr",
)
PLUS_TAGS = ("news", "shopping", "twitter", "2024", "spam", "work", "promo")


def _local(rng: random.Random) -> str:
    f, last = rng.choice(FIRST), rng.choice(LAST)
    return rng.choice(
        (f"{f}.{last}", f"{f}{last}{rng.randint(1, 99)}", f"{f[0]}{last}", f"{f}_{last}", f"{f}-{last}", f)
    )


def _email(rng: random.Random, fmt: str) -> list[Seg]:
    f, last = rng.choice(FIRST), rng.choice(LAST)
    dom = rng.choice(DOMAINS)
    name, _, tld = dom.partition(".")
    if fmt == "plain":
        s = f"{_local(rng)}@{dom}"
    elif fmt == "plus":
        s = f"{f}.{last}+{rng.choice(PLUS_TAGS)}@{dom}"
    elif fmt == "subdomain":
        s = f"{_local(rng)}@{rng.choice(SUBDOMAINS)}"
    elif fmt == "uppercase":
        s = rng.choice(
            (
                f"{f.title()}.{last.title()}@{name.title()}.{tld.upper()}",
                f"{f}.{last}@{dom}".upper(),
                f"{f.title()}{last.title()}@{dom}",
            )
        )
    elif fmt == "dot_at_words":  # jane dot doe at gmail dot com
        s = f"{f} dot {last} at {name} dot {tld.replace('.', ' dot ')}"
    elif fmt == "bracket_at":  # jane[at]example.com, jane.doe[at]example[dot]com
        s = rng.choice(
            (f"{f}[at]{dom}", f"{f}.{last}[at]{name}[dot]{tld.replace('.', '[dot]')}", f"{f} [at] {dom}")
        )
    elif fmt == "paren_at":  # jane (at) example (dot) com
        s = rng.choice(
            (
                f"{f} (at) {name} (dot) {tld.replace('.', ' (dot) ')}",
                f"{f}.{last}(at){name}(dot){tld.replace('.', '(dot)')}",
            )
        )
    elif fmt == "word_at":  # jane at example.com
        s = rng.choice((f"{f} at {dom}", f"{f}.{last} at {dom}"))
    elif fmt == "caps_words":  # jane.doe AT gmail DOT com
        s = f"{f}.{last} AT {name} DOT {tld.replace('.', ' DOT ')}"
    elif fmt == "spaced_at":  # jane.doe @ gmail.com
        s = f"{f}.{last} @ {dom}"
    else:
        raise ValueError(fmt)
    return [_pii("email", fmt, s)]


EMAIL_FORMATS = (
    "plain",
    "plus",
    "subdomain",
    "uppercase",
    "dot_at_words",
    "bracket_at",
    "paren_at",
    "word_at",
    "caps_words",
    "spaced_at",
)


# --- phone numbers ----------------------------------------------------------------------------
# Area codes in service (NANPA), so the numbers are ones a person could really have.
US_AREA_CODES = (
    "201",
    "202",
    "206",
    "212",
    "213",
    "303",
    "305",
    "312",
    "404",
    "415",
    "503",
    "512",
    "602",
    "617",
    "646",
    "702",
    "713",
    "718",
    "720",
    "773",
    "818",
    "904",
    "917",
    "949",
)


def _nanp(rng: random.Random) -> tuple[str, str, str]:
    while True:  # exchange: NXX, not N11
        exch = _digits(rng, 3, "23456789")
        if exch[1:] != "11":
            return rng.choice(US_AREA_CODES), exch, _digits(rng, 4)


def _phone_text(rng: random.Random, fmt: str) -> str:
    d = lambda n, first="0123456789": _digits(rng, n, first)  # noqa: E731
    if fmt.startswith("us_"):
        a, e, n = _nanp(rng)
        return {
            "us_e164": f"+1{a}{e}{n}",
            "us_paren": f"({a}) {e}-{n}",
            "us_dots": f"{a}.{e}.{n}",
            "us_dashes": f"{a}-{e}-{n}",
            "us_intl_spaces": f"+1 {a} {e} {n}",
            "us_1_dashes": f"1-{a}-{e}-{n}",
            "us_intl_paren": f"+1 ({a}) {e}-{n}",
        }[fmt]
    if fmt.startswith("uk_"):
        london = rng.choice("378") + d(3)
        mob = "7" + d(3, "4579")  # 07[4579]: mobile (076 is pagers)
        return {
            "uk_intl_london": f"+44 20 {london} {d(4)}",
            "uk_national_london": f"020 {london} {d(4)}",
            "uk_mobile": f"0{mob} {d(6)}",
            "uk_intl_trunk": f"+44 (0)20 {london} {d(4)}",
            "uk_intl_mobile": f"+44 {mob} {d(6)}",
            "uk_e164": f"+44{mob}{d(6)}",
            "uk_geo_4": f"{rng.choice(UK_AREA_4)} {d(3, '2345678')} {d(4)}",
            "uk_geo_5": f"{rng.choice(UK_AREA_5)} {d(6, '2345678')}",
        }[fmt]
    if fmt.startswith("de_"):
        city = rng.choice(("30", "40", "89", "69", "221", "211", "711", "341"))
        mob = "1" + rng.choice(("51", "52", "57", "60", "62", "70", "71", "72", "76", "79"))
        sub = d(rng.choice((7, 8)), "123456789") if len(city) == 2 else d(rng.choice((6, 7)), "123456789")
        return {
            "de_intl": f"+49 {city} {sub}",
            "de_national": f"0{city} {sub}",
            "de_mobile": f"0{mob} {d(8, '123456789')}",
            "de_slash": f"0{city}/{sub}",
            "de_intl_mobile": f"+49 {mob} {d(8, '123456789')}",
            "de_dash": f"0{city}-{sub}",
            "de_e164": f"+49{city}{sub}",
        }[fmt]
    if fmt.startswith("fr_"):  # 0 + 9 digits, written in pairs: 01 23 45 67 89
        land = rng.choice("123459") + d(8)
        mob = rng.choice(("6" + d(1, "012345678"), "7" + d(1, "345678"))) + d(7)  # 06, 073-078
        pairs = (
            lambda nine, sep: nine[0] + sep + sep.join(nine[i : i + 2] for i in range(1, 9, 2))
        )  # noqa: E731
        return {
            "fr_intl": "+33 " + pairs(land, " "),
            "fr_national": "0" + pairs(land, " "),
            "fr_dots": "0" + pairs(mob, "."),
            "fr_intl_mobile": "+33 " + pairs(mob, " "),
            "fr_compact": "0" + mob,
        }[fmt]
    if fmt.startswith("es_"):
        land = "9" + rng.choice(("1", "3", "5", "6")) + d(1, "1234567")
        mob = rng.choice(("6" + d(1), "7" + d(1, "1234"))) + d(1)  # 6xx, 71x-74x
        return {
            "es_intl": f"+34 {land} {d(3)} {d(3)}",
            "es_national": f"{land} {d(3)} {d(3)}",
            "es_mobile_pairs": f"{mob} {d(2)} {d(2)} {d(2)}",
            "es_intl_mobile": f"+34 {mob}{d(6)}",
            "es_landline_pairs": f"{land[:2]} {d(3)} {d(2)} {d(2)}",
        }[fmt]
    if fmt.startswith("it_"):
        land = rng.choice(("06", "02", "011", "055", "081"))
        mob = "3" + rng.choice(("20", "28", "33", "35", "38", "40", "47", "49", "66", "93"))
        sub = f"{d(4)} {d(4)}" if len(land) == 2 else f"{d(3)} {d(4)}"
        return {
            "it_intl_landline": f"+39 {land} {sub}",
            "it_landline": f"{land} {sub}",
            "it_mobile": f"{mob} {d(3)} {d(4)}",
            "it_intl_mobile": f"+39 {mob} {d(3)} {d(4)}",
        }[fmt]
    if fmt.startswith("nl_"):
        city = rng.choice(("20", "10", "30", "70"))
        return {
            "nl_intl": f"+31 {city} {d(3, '123456789')} {d(4)}",
            "nl_national": f"0{city} {d(3, '123456789')} {d(4)}",
            "nl_mobile": f"06 {d(8, '12345')}",
            "nl_intl_mobile": f"+31 6 {d(8, '12345')}",
            "nl_mobile_dash": f"06-{d(8, '12345')}",
        }[fmt]
    raise ValueError(fmt)


UK_AREA_4 = ("0113", "0114", "0115", "0116", "0117", "0118", "0121", "0131", "0141", "0151", "0161", "0191")
UK_AREA_5 = ("01223", "01273", "01392", "01865", "01904", "01752", "01603")
PHONE_FORMATS = (
    "us_e164",
    "us_paren",
    "us_dots",
    "us_dashes",
    "us_intl_spaces",
    "us_1_dashes",
    "us_intl_paren",
    "uk_intl_london",
    "uk_national_london",
    "uk_mobile",
    "uk_intl_trunk",
    "uk_intl_mobile",
    "uk_e164",
    "uk_geo_4",
    "uk_geo_5",
    "de_intl",
    "de_national",
    "de_mobile",
    "de_slash",
    "de_intl_mobile",
    "de_dash",
    "de_e164",
    "fr_intl",
    "fr_national",
    "fr_dots",
    "fr_intl_mobile",
    "fr_compact",
    "es_intl",
    "es_national",
    "es_mobile_pairs",
    "es_intl_mobile",
    "es_landline_pairs",
    "it_intl_landline",
    "it_landline",
    "it_mobile",
    "it_intl_mobile",
    "nl_intl",
    "nl_national",
    "nl_mobile",
    "nl_intl_mobile",
    "nl_mobile_dash",
)


def _phone(rng: random.Random, fmt: str) -> list[Seg]:
    return [_pii("phone", fmt, _phone_text(rng, fmt))]


# --- payment cards ----------------------------------------------------------------------------
def _card_number(rng: random.Random, brand: str) -> str:
    if brand == "visa":
        prefix, length = "4", 16
    elif brand == "mastercard":
        prefix, length = rng.choice((str(rng.randint(51, 55)), str(rng.randint(2221, 2720)))), 16
    elif brand == "amex":
        prefix, length = rng.choice(("34", "37")), 15
    elif brand == "discover":
        prefix, length = rng.choice(("6011", str(rng.randint(644, 649)), "65")), 16
    else:
        raise ValueError(brand)
    payload = prefix + _digits(rng, length - 1 - len(prefix))
    return payload + luhn_check_digit(payload)


def _group_card(number: str, sep: str) -> str:
    if len(number) == 15:  # Amex prints 4-6-5
        return sep.join((number[:4], number[4:10], number[10:]))
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


_SEPS = {"space": " ", "dash": "-", "none": ""}
CARD_FORMATS = tuple(f"{b}_{s}" for b in ("visa", "mastercard", "amex", "discover") for s in _SEPS)


def _card(rng: random.Random, fmt: str) -> list[Seg]:
    brand, sep = fmt.split("_")
    return [_pii("card", fmt, _group_card(_card_number(rng, brand), _SEPS[sep]))]


# --- IP addresses -----------------------------------------------------------------------------
def _ipv4(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return f"{net}.{rng.randint(1, 254)}"
    if kind == 1:
        return rng.choice(
            (
                f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            )
        )
    first = rng.choice([n for n in range(11, 224) if n not in (127, 169, 172, 192)])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> ipaddress.IPv6Address:
    prefix = rng.choice(
        (0x20010DB8, 0x2A020000 | rng.getrandbits(16), 0x26001F00 | rng.getrandbits(8), 0xFE800000)
    )
    if prefix == 0xFE800000:
        return ipaddress.IPv6Address((0xFE80 << 112) | rng.getrandbits(64))
    # Leave some zero groups so that compression has something to compress.
    groups = [rng.getrandbits(16) if rng.random() < 0.6 else 0 for _ in range(6)]
    groups[-1] = groups[-1] or rng.randint(1, 0xFFFF)  # host addresses: the last group is not zero
    value = prefix << 96
    for i, g in enumerate(groups):
        value |= g << (16 * (5 - i))
    if rng.random() < 0.3:
        value = (prefix << 96) | rng.randint(1, 0xFFFF)  # 2001:db8::1-like
    return ipaddress.IPv6Address(value)


IP_FORMATS = (
    "ipv4",
    "ipv4_private",
    "ipv4_port",
    "ipv6_full",
    "ipv6_compressed",
    "ipv6_mapped",
    "ipv6_bracket_port",
)


def _ip(rng: random.Random, fmt: str) -> list[Seg]:
    if fmt == "ipv4":
        return [_pii("ip", fmt, _ipv4(rng))]
    if fmt == "ipv4_private":
        return [
            _pii(
                "ip",
                fmt,
                rng.choice(
                    (
                        f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                        f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    )
                ),
            )
        ]
    if fmt == "ipv4_port":
        return [_pii("ip", fmt, _ipv4(rng)), _plain(f":{rng.choice((22, 80, 443, 8080, 3000, 5432))}")]
    if fmt == "ipv6_full":
        return [_pii("ip", fmt, _ipv6(rng).exploded)]
    if fmt == "ipv6_compressed":
        while True:
            addr = _ipv6(rng).compressed
            if "::" in addr:
                return [_pii("ip", fmt, addr)]
    if fmt == "ipv6_mapped":
        return [_pii("ip", fmt, "::ffff:" + _ipv4(rng))]
    if fmt == "ipv6_bracket_port":
        return [
            _plain("["),
            _pii("ip", fmt, _ipv6(rng).compressed),
            _plain(f"]:{rng.choice((443, 8443, 22))}"),
        ]
    raise ValueError(fmt)


# --- IBAN -------------------------------------------------------------------------------------
IBAN_COUNTRIES = ("DE", "GB", "FR", "ES", "NL", "IT", "CH")
IBAN_FORMATS = tuple(f"{c}_{p}" for c in IBAN_COUNTRIES for p in ("compact", "spaced"))
_IBAN_LENGTH = {"DE": 22, "GB": 22, "FR": 27, "ES": 24, "NL": 18, "IT": 27, "CH": 21}


def _bban(rng: random.Random, country: str) -> str:
    if country == "DE":  # 8-digit Bankleitzahl + 10-digit account
        return _digits(rng, 8, "12345678") + _digits(rng, 10)
    if country == "GB":  # 4-letter bank code + 6-digit sort code + 8-digit account
        return (
            rng.choice(("NWBK", "BARC", "LOYD", "HBUK", "MIDL", "MONZ")) + _digits(rng, 6) + _digits(rng, 8)
        )
    if country == "FR":  # bank 5 + branch 5 + account 11 + RIB key 2
        bank, branch, account = _digits(rng, 5, "123"), _digits(rng, 5), _digits(rng, 11)
        return bank + branch + account + _fr_rib_key(bank, branch, account)
    if country == "ES":  # bank 4 + branch 4 + DC 2 + account 10
        bank, branch, account = _digits(rng, 4, "012"), _digits(rng, 4), _digits(rng, 10)
        return bank + branch + _es_dc(bank, branch, account) + account
    if country == "NL":  # 4-letter bank code + 10-digit account passing the 11-test
        while True:
            account = _digits(rng, 10)
            if sum(int(c) * (10 - i) for i, c in enumerate(account)) % 11 == 0:
                break
        return rng.choice(("ABNA", "INGB", "RABO", "TRIO", "SNSB", "ASNB", "KNAB", "BUNQ")) + account
    if country == "IT":  # CIN 1 + ABI 5 + CAB 5 + account 12
        rest = _digits(rng, 5, "0123") + _digits(rng, 5) + _digits(rng, 12)
        return _it_cin(rest) + rest
    if country == "CH":  # clearing 5 + account 12
        return "00" + _digits(rng, 3) + _digits(rng, 12)
    raise ValueError(country)


def _iban_compact(rng: random.Random, country: str) -> str:
    s = iban_from_bban(country, _bban(rng, country))
    assert len(s) == _IBAN_LENGTH[country] and iban_valid(s), s
    return s


def _iban(rng: random.Random, fmt: str) -> list[Seg]:
    country, style = fmt.split("_")
    s = _iban_compact(rng, country)
    return [_pii("iban", fmt, _group4(s) if style == "spaced" else s)]


def _bad_iban(rng: random.Random) -> list[Seg]:
    country = rng.choice(IBAN_COUNTRIES)
    good = _iban_compact(rng, country)
    while True:
        if rng.random() < 0.5:  # wrong check digits
            s = good[:2] + f"{rng.randint(2, 98):02d}" + good[4:]
        else:  # one mistyped digit in the BBAN
            positions = [i for i in range(4, len(good)) if good[i].isdigit()]
            i = rng.choice(positions)
            s = good[:i] + rng.choice([c for c in "0123456789" if c != good[i]]) + good[i + 1 :]
        if not iban_valid(s):
            break
    style = rng.choice(("compact", "spaced"))
    return [_pub("bad_iban", f"{country}_{style}", _group4(s) if style == "spaced" else s)]


# --- SSN --------------------------------------------------------------------------------------
SSN_FORMATS = ("dashes", "dashes", "dashes", "spaces")


def _ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def _ssn(rng: random.Random, fmt: str) -> list[Seg]:
    a, g, s = _ssn_parts(rng)
    return [_pii("ssn", fmt, f"{a}-{g}-{s}" if fmt == "dashes" else f"{a} {g} {s}")]


# --- secrets ----------------------------------------------------------------------------------
TOKEN_FORMATS = (
    "anthropic_api03",
    "anthropic_admin01",
    "openai_proj",
    "openai_legacy",
    "aws_access_key_id",
    "github_ghp",
    "github_gho",
    "github_pat",
    "slack_xoxb",
    "slack_webhook",
    "stripe_sk_live",
    "stripe_rk_test",
    "google_aiza",
    "jwt",
)
PEM_FORMATS = ("pem_pkcs8", "pem_rsa", "pem_ec", "pem_openssh")
ASSIGN_FORMATS = ("password_colon", "pwd_equals", "passwd_spaced_equals", "password_quoted", "api_key_equals")
SECRET_FORMATS = (
    TOKEN_FORMATS + ("bearer_header", "bearer_lower") + PEM_FORMATS + ASSIGN_FORMATS + ("password_is",)
)

PASSWORDS = (
    "hunter2",
    "Tr0ub4dor&3",
    "correcthorsebatterystaple",
    "Summer2024!",
    "qwerty123",
    "letmein99",
    "P@ssw0rd!",
    "iloveyou2",
    "Dragon#77",
    "monkey-banana-42",
    "Zx9!kLm2qP",
    "s3cr3tSauce",
)


def _password(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(PASSWORDS)
    return _chars(rng, _ALNUM, rng.randint(6, 10)) + rng.choice(("", "!", "#", "$", "_")) + _digits(rng, 2)


def _jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(("HS256", "RS256")), "typ": "JWT"}
    payload = {
        "sub": str(rng.randint(10**6, 10**10)),
        "name": f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()}",
        "iat": rng.randint(1_600_000_000, 1_800_000_000),
    }
    if rng.random() < 0.5:
        payload = {"sub": payload["sub"], "iat": payload["iat"]}
    enc = lambda o: _b64url(json.dumps(o, separators=(",", ":")).encode())  # noqa: E731
    return f"{enc(header)}.{enc(payload)}.{_b64url(_bytes(rng, 32))}"


def _token(rng: random.Random, fmt: str) -> str:
    if fmt == "anthropic_api03":
        return "sk-ant-api03-" + _chars(rng, _B64URL, 93) + "AA"
    if fmt == "anthropic_admin01":
        return "sk-ant-admin01-" + _chars(rng, _B64URL, 93) + "AA"
    if fmt == "openai_proj":
        return (
            "sk-proj-"
            + _chars(rng, _B64URL, rng.randint(40, 74))
            + "T3BlbkFJ"
            + _chars(rng, _B64URL, rng.randint(40, 74))
        )
    if fmt == "openai_legacy":
        return "sk-" + _chars(rng, _ALNUM, 20) + "T3BlbkFJ" + _chars(rng, _ALNUM, 20)
    if fmt == "aws_access_key_id":
        return "AKIA" + _chars(rng, string.ascii_uppercase + "234567", 16)
    if fmt == "github_ghp":
        return "ghp_" + _chars(rng, _ALNUM, 36)
    if fmt == "github_gho":
        return "gho_" + _chars(rng, _ALNUM, 36)
    if fmt == "github_pat":
        return "github_pat_" + _chars(rng, _UPPER_ALNUM, 22) + "_" + _chars(rng, _ALNUM, 59)
    if fmt == "slack_xoxb":
        return (
            f"xoxb-{_digits(rng, rng.randint(10, 13), '123456789')}-{_digits(rng, 13, '123456789')}-"
            + _chars(rng, _ALNUM, 24)
        )
    if fmt == "slack_webhook":  # the path only: see _secret
        return (
            f"T{_chars(rng, _UPPER_ALNUM, rng.randint(8, 10))}"
            f"/B{_chars(rng, _UPPER_ALNUM, rng.randint(8, 10))}/{_chars(rng, _ALNUM, 24)}"
        )
    if fmt == "stripe_sk_live":
        return "sk_live_" + _chars(rng, _ALNUM, rng.choice((24, 99)))
    if fmt == "stripe_rk_test":
        return "rk_test_" + _chars(rng, _ALNUM, rng.choice((24, 99)))
    if fmt == "google_aiza":
        return "AIza" + _chars(rng, _B64URL, 35)
    if fmt == "jwt":
        return _jwt(rng)
    raise ValueError(fmt)


_PEM = {  # label, DER prefix of the body (so the base64 starts as real keys do)
    "pem_pkcs8": ("PRIVATE KEY", bytes.fromhex("308204be020100300d06092a864886f70d0101010500")),
    "pem_rsa": ("RSA PRIVATE KEY", bytes.fromhex("308204a40201000282010100")),
    "pem_ec": ("EC PRIVATE KEY", bytes.fromhex("30770201010420")),
    "pem_openssh": ("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00\x00\x00\x00\x04none"),
}


def _secret(rng: random.Random, fmt: str) -> list[Seg]:
    if fmt == "slack_webhook":
        return [_plain("https://hooks.slack.com/services/"), _pii("secret", fmt, _token(rng, fmt))]
    if fmt in TOKEN_FORMATS:
        return [_pii("secret", fmt, _token(rng, fmt))]
    if fmt in ("bearer_header", "bearer_lower"):
        tok = (
            _jwt(rng)
            if rng.random() < 0.3
            else _chars(rng, _ALNUM + "-._~", rng.randint(32, 64)).strip("-._~")
        )
        lead = "Authorization: Bearer " if fmt == "bearer_header" else "bearer "
        return [_plain(lead), _pii("secret", fmt, tok)]
    if fmt in _PEM:  # the base64 body is the secret; the boundary lines are fixed text
        label, prefix = _PEM[fmt]
        body = base64.b64encode(prefix + _bytes(rng, rng.randint(60, 84))).decode()
        body = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        return [
            _plain(f"-----BEGIN {label}-----\n"),
            _pii("secret", fmt, body),
            _plain(f"\n-----END {label}-----"),
        ]
    # Assignments: the key word is public, the value is the secret.
    if fmt == "password_colon":
        return [
            _pub("secret_keyword", fmt, rng.choice(("password", "Password"))),
            _plain(": "),
            _pii("secret", fmt, _password(rng)),
        ]
    if fmt == "pwd_equals":
        return [_pub("secret_keyword", fmt, "pwd"), _plain("="), _pii("secret", fmt, _password(rng))]
    if fmt == "passwd_spaced_equals":
        return [_pub("secret_keyword", fmt, "passwd"), _plain(" = "), _pii("secret", fmt, _password(rng))]
    if fmt == "password_quoted":
        key = rng.choice(("password", "passwd"))
        value = rng.choice((_password(rng), "correct horse battery staple", "open sesame 42"))
        q = rng.choice("\"'")
        return [_pub("secret_keyword", fmt, key), _plain(f"={q}"), _pii("secret", fmt, value), _plain(q)]
    if fmt == "api_key_equals":
        return [
            _pub("secret_keyword", fmt, rng.choice(("api_key", "API_KEY"))),
            _plain("="),
            _pii("secret", fmt, _chars(rng, _ALNUM, 32)),
        ]
    if fmt == "password_is":
        return [
            _plain(rng.choice(("my ", "My ", "the wifi "))),
            _pub("secret_keyword", fmt, "password"),
            _plain(" is "),
            _pii("secret", fmt, _password(rng)),
        ]
    raise ValueError(fmt)


# --- public items -----------------------------------------------------------------------------
HANDLE_WORDS = (
    "acme",
    "jane",
    "dev",
    "news",
    "support",
    "daily",
    "the",
    "real",
    "tom",
    "berlin",
    "crypto",
    "data",
    "fc",
    "pixel",
    "coffee",
    "maria",
    "bot",
    "team",
    "official",
    "nerd",
)
HASHTAGS = (
    "#Python",
    "#WorldCup2026",
    "#AI",
    "#100DaysOfCode",
    "#Berlin",
    "#nofilter",
    "#MondayMotivation",
    "#F1",
    "#DevOps",
    "#Bitcoin",
    "#London",
    "#Paris2024",
    "#ChampionsLeague",
    "#Election2024",
    "#GDPR",
    "#infosec",
    "#fail",
    "#rustlang",
    "#OOTD",
    "#Bundesliga",
)
CASHTAGS = ("$AAPL", "$TSLA", "$NVDA", "$BTC", "$ETH", "$MSFT", "$GME", "$AMZN", "$SPY", "$META")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _handle(rng: random.Random) -> str:
    w = rng.sample(HANDLE_WORDS, 2)
    return "@" + rng.choice(
        (f"{w[0]}_{w[1]}", f"{w[0]}{w[1]}", f"{w[0].title()}{w[1].title()}", f"{w[0]}{rng.randint(1, 999)}")
    )


def _date(rng: random.Random) -> tuple[str, str]:
    d = _dt.date(1990, 1, 1) + _dt.timedelta(days=rng.randrange(15000))
    fmt = rng.choice(("iso", "dmy_slash", "mdy_slash", "dmy_dot", "month_d_y", "d_month_y", "mon_d"))
    text = {
        "iso": d.isoformat(),
        "dmy_slash": f"{d.day:02d}/{d.month:02d}/{d.year}",
        "mdy_slash": f"{d.month:02d}/{d.day:02d}/{d.year}",
        "dmy_dot": f"{d.day:02d}.{d.month:02d}.{d.year}",
        "month_d_y": f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
        "d_month_y": f"{d.day} {MONTHS[d.month - 1]} {d.year}",
        "mon_d": f"{MONTHS[d.month - 1][:3]} {d.day}",
    }[fmt]
    return fmt, text


def _not_luhn(digits: str) -> str:
    if luhn_valid(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    return digits


def _public(rng: random.Random, cat: str) -> list[Seg]:
    fmt, text = cat, ""
    if cat == "handle":
        text = _handle(rng)
    elif cat == "hashtag":
        text = rng.choice(HASHTAGS)
    elif cat == "cashtag":
        text = rng.choice(CASHTAGS)
    elif cat == "link":
        text = "https://t.co/" + _chars(rng, _ALNUM, 10)
    elif cat in ("number", "count", "percent", "decimal"):
        fmt = {
            "number": rng.choice(("int", "thousands", "suffix")),
            "count": rng.choice(("int", "int", "thousands")),
            "percent": "percent",
            "decimal": "decimal",
        }[cat]
        cat = "number"
        text = {
            "int": str(rng.randint(1, 99)),
            "thousands": f"{rng.randint(1, 250) * 500:,}",
            "percent": rng.choice((f"{rng.randint(1, 99)}%", f"{rng.randint(1, 99)}.{rng.randint(1, 9)}%")),
            "decimal": f"{rng.randint(0, 20)}.{rng.randint(1, 99)}",
            "suffix": rng.choice((f"{rng.randint(2, 900)}k", f"{rng.randint(1, 9)}.{rng.randint(1, 9)}M")),
        }[fmt]
    elif cat == "date":
        fmt, text = _date(rng)
    elif cat == "time":
        fmt = rng.choice(("hh_mm", "hh_mm_ss", "ampm", "h_mm_pm"))
        h, m, s = rng.randint(0, 23), rng.randrange(0, 60, 5), rng.randint(0, 59)
        text = {
            "hh_mm": f"{h:02d}:{m:02d}",
            "hh_mm_ss": f"{h:02d}:{m:02d}:{s:02d}",
            "ampm": f"{rng.randint(1, 12)}{rng.choice(('am', 'pm'))}",
            "h_mm_pm": f"{rng.randint(1, 12)}:{m:02d} {rng.choice(('AM', 'PM'))}",
        }[fmt]
    elif cat == "price":
        fmt = rng.choice(("usd_cents", "eur", "gbp", "usd", "eur_suffix"))
        text = {
            "usd_cents": f"${rng.randint(1, 2500):,}.{rng.randint(0, 99):02d}",
            "eur": f"€{rng.randint(1, 999)}",
            "gbp": f"£{rng.randint(1, 99)}.{rng.randint(0, 99):02d}",
            "usd": f"${rng.randint(1, 500)}",
            "eur_suffix": f"{rng.randint(1, 99)},{rng.randint(0, 99):02d} €",
        }[fmt]
    elif cat == "version":
        fmt = rng.choice(("v_semver", "semver", "v_prerelease", "major_minor"))
        a, b, c = rng.randint(0, 12), rng.randint(0, 30), rng.randint(0, 40)
        text = {
            "v_semver": f"v{a}.{b}.{c}",
            "semver": f"{a}.{b}.{c}",
            "v_prerelease": f"v{a}.{b}.0-rc.{rng.randint(1, 5)}",
            "major_minor": f"{a + 1}.{b}",
        }[fmt]
    elif cat == "score":
        fmt = rng.choice(("football", "basketball"))
        text = (
            f"{rng.randint(0, 6)}-{rng.randint(0, 6)}"
            if fmt == "football"
            else f"{rng.randint(80, 130)}-{rng.randint(80, 130)}"
        )
    elif cat == "year":
        text = str(rng.randint(1970, 2031))
    elif cat == "order_number":
        fmt = rng.choice(("hash_digits", "amazon", "ord_prefix", "thirteen_digits"))
        if fmt == "hash_digits":
            text = "#" + _digits(rng, rng.randint(6, 8), "123456789")
        elif fmt == "amazon":  # 3-7-7, 17 digits that fail Luhn
            digits = _not_luhn(rng.choice(("111", "112", "113", "114")) + _digits(rng, 14))
            text = f"{digits[:3]}-{digits[3:10]}-{digits[10:]}"
        elif fmt == "ord_prefix":
            text = f"ORD-{_digits(rng, 8, '123456789')}"
        else:
            text = _not_luhn(_digits(rng, 13, "123456789"))
    elif cat == "bad_iban":
        return _bad_iban(rng)
    elif cat == "non_luhn_16":
        fmt = rng.choice(tuple(_SEPS))
        digits = _not_luhn(_digits(rng, 16, "3456"))
        text = _SEPS[fmt].join(digits[i : i + 4] for i in range(0, 16, 4))
    else:
        raise ValueError(cat)
    return [_pub(cat, fmt, text)]


# --- templates --------------------------------------------------------------------------------
# {x} is the clause's own PII item; {email}, {phone}, ... add a further PII item of that kind;
# {handle}, {date}, ... add a public item of that category. Everything else is plain text.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "email": (
        "email me at {x} for collabs ✨",
        "Send your CV to {x} before {date}",
        "contact: {x}",
        "DMs closed, write to {x} instead",
        "my email is {x}, pls don't spam 🙏",
        "reach the team ({x}) anytime {hashtag}",
        "{x} is the best way to reach me",
        "got a weird invoice from {x} today 🙄 {handle}",
        "{handle} I sent the files to {x} at {time}, did you get them?",
        "Questions? Mail {x} or call {phone}",
        "new address: {x}. Old one is dead.",
        "Tickets {price}, RSVP to {x} by {date} {link}",
    ),
    "phone": (
        "call me at {x} after {time}",
        "Our new support line is {x} (Mon–Fri)",
        "text {x} if you find my dog 🐶 {hashtag}",
        "{handle} pls call back on {x}, been on hold since {time}",
        "wrong number again… who keeps giving out {x}??",
        "Reservations: {x} or DM us",
        "my new number is {x}, delete the old one",
        "{x} — that's the landlord, call him not me",
        "called {x} {count} times today, no answer",
        "Tel: {x}",
        "cell: {x}. WhatsApp works too",
        "for orders call {x} or email {email}",
    ),
    "phone_de": (
        "Ruf mich an: {x}",
        "Tel.: {x} (ab {time})",
        "Handy: {x}, aber bitte erst nach {time}",
        "Neue Nummer: {x} 📱",
    ),
    "phone_fr": ("Appelez-moi au {x} svp", "tél : {x}", "mon nouveau numéro : {x}", "Réservations au {x} 🍷"),
    "phone_es": ("Llámame al {x}", "Móvil: {x}", "mi número nuevo es {x}", "Reservas: {x} 🥘"),
    "phone_it": ("Chiamami al {x}", "cell. {x}", "il mio numero è {x}", "Prenotazioni: {x} 🍕"),
    "phone_nl": ("Bel me op {x}", "tel: {x}", "mijn nieuwe nummer is {x}", "Reserveren via {x} 🚲"),
    "card": (
        "lol my mom just posted her card number {x} in the family chat",
        "is {x} the right format for the test card? {hashtag}",
        "charged twice on {x} by {handle}, refund pls",
        "{x} — found this on a receipt at the bus stop",
        "paid {price} with card {x}",
        "card: {x} — why does checkout keep failing",
        "Visa/MC accepted. Example: {x}",
        "{handle} my card {x} was blocked after {count} attempts",
    ),
    "ip": (
        "server at {x} is down again",
        "my IP is {x}, why am I banned {handle}?",
        "blocked {x} after {count} failed logins",
        "traffic spike from {x} at {time} {hashtag}",
        "{x} keeps scanning our ports",
        "whitelisted {x} in the firewall, try now",
        "geo-IP says {x} is in Berlin lol",
    ),
    "ipv4": (
        "ssh root@{x} keeps timing out",
        "curl http://{x}/health returns 502 since {date}",
        "ping {x} — 100% packet loss",
    ),
    "iban": (
        "please send the {price} to {x}, thanks!",
        "IBAN: {x} (ref: rent {date})",
        "my IBAN is {x}",
        "pay to {x} by {date} pls",
        "{handle} refund goes to {x}, not the old account",
        "Donations: {x} 🙏 {hashtag}",
    ),
    "iban_de": ("Spenden bitte an {x} 🙏", "Überweisung an {x}, Betreff: Miete"),
    "ssn": (
        "why does this form want my SSN ({x}) just to sign up??",
        "my social is {x} lol jk… unless?",
        "IRS letter says SSN {x} is locked",
        "Name: Jane Doe, SSN: {x}, DOB: {date}",
        "{x} is on the W-2 they mailed to the wrong house",
        "{handle} your rep read my ssn {x} out loud in the store",
    ),
    "token": (
        "accidentally pushed {x} to a public repo 🤦",
        "rotate your keys people: found {x} in a screenshot",
        "is this key still valid? {x}",
        "{x} <- from the tutorial, doesn't work",
        "export API_TOKEN={x}",
        "{handle} your docs example has a live key: {x}",
        "config.yaml had `{x}` in it {hashtag}",
    ),
    "bearer": (
        'curl -H "{x}" https://api.example.com/v1/me returns 401',
        "request headers: {x}, Accept: */*",
        "logs show {x} in plain text 😱",
        "{handle} your SDK prints {x} at debug level",
    ),
    "pem": (
        "who commits this?!\n{x}",
        "{x}\nfound in a public bucket {hashtag}",
        "is this key format right?\n{x}",
    ),
    "assign": (
        "wifi at the office: {x} ☕",
        "{x} — please don't share",
        "sticky note on the monitor says {x} 🙃",
        "config.ini: {x}",
        "default login is admin, {x} {hashtag}",
        "{handle} your router ships with {x}",
    ),
    "assign_is": (
        "ok fine, {x}. happy now?",
        "{x} and I'm not changing it",
        "lol {x} since {year}",
    ),
    "public": (
        "{handle} thanks for the help with {version}, works now 🙌",
        "Shipped {version} today! Release notes: {link} {hashtag}",
        "Meeting moved to {date} at {time}, don't be late {handle}",
        "{cashtag} up {percent} today, closed at {price} 📈",
        "What a match!! {score} {hashtag} {hashtag}",
        "Order {order_number} still not delivered since {date}. {handle} any update?",
        "prices went from {price} to {price} in {year}, insane",
        "Back in {year} this cost {price}",
        "{count} people showed up at {time}, amazing {hashtag}",
        "Deadline: {date} {time} CET. Details {link}",
        "IBAN {bad_iban} keeps getting rejected, checksum wrong? {handle}",
        "tracking number {non_luhn_16} shows nothing since {date}",
        "gift card {non_luhn_16} balance {price}??",
        "upgraded to {version} and CPU went from {percent} to {percent}",
        "doors open {time}, show starts {time}. Tickets {price} {link}",
        "Q1 revenue {price}, {percent} YoY {cashtag}",
        "Half-time {score}. {handle} what was that??",
        "invoice {order_number} from {date} still unpaid",
        "{count} days until {date} 🎄",
        "version {version} is out with {count} bug fixes {link}",
        "final {score} after extra time, {count} fans on the pitch",
        "is {bad_iban} a real IBAN? looks off",
        "member no. {non_luhn_16}, expires {date}",
        "{year} was wild. {hashtag}",
        "ordered on {date}, ref {order_number}, paid {price}",
        "{cashtag} and {cashtag} both down {percent} since {time}",
        "rebooted at {time}, uptime now {count} hours on {version}",
        "see you at {time} on {date}!",
        "we just hit {number} followers 🎉 thank you all",
        "ran {decimal} km this morning 🏃 {hashtag}",
    ),
}

_TEMPLATE_PART = re.compile(r"\{(\w+)\}")


def _group_for(kind: str, fmt: str, rng: random.Random) -> str:
    if kind == "phone":
        local = "phone_" + fmt[:2]
        return local if local in TEMPLATES and rng.random() < 0.5 else "phone"
    if kind == "ip":
        return "ipv4" if fmt.startswith("ipv4") and fmt != "ipv4_port" and rng.random() < 0.35 else "ip"
    if kind == "iban":
        return "iban_de" if fmt.startswith("DE") and rng.random() < 0.5 else "iban"
    if kind == "secret":
        if fmt in TOKEN_FORMATS:
            return "token"
        if fmt.startswith("bearer"):
            return "bearer"
        if fmt in PEM_FORMATS:
            return "pem"
        return "assign_is" if fmt == "password_is" else "assign"
    return kind


_PII_GEN = {
    "email": _email,
    "phone": _phone,
    "card": _card,
    "ip": _ip,
    "iban": _iban,
    "ssn": _ssn,
    "secret": _secret,
}
_FORMATS = {
    "email": EMAIL_FORMATS,
    "phone": PHONE_FORMATS,
    "card": CARD_FORMATS,
    "ip": IP_FORMATS,
    "iban": IBAN_FORMATS,
    "ssn": SSN_FORMATS,
    "secret": SECRET_FORMATS,
}
# Share of the clauses built around each kind (out of 20).
_KIND_WEIGHTS = {"email": 3, "phone": 5, "card": 2, "ip": 2, "iban": 2, "ssn": 1, "secret": 5}


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.kinds = _Cycle(rng, [k for k, w in _KIND_WEIGHTS.items() for _ in range(w)])
        self.formats = {k: _Cycle(rng, fmts) for k, fmts in _FORMATS.items()}
        self.templates = {g: _Cycle(rng, ts) for g, ts in TEMPLATES.items()}

    def pii_item(self, kind: str) -> list[Seg]:
        return _PII_GEN[kind](self.rng, self.formats[kind].next())

    def render(self, template: str, main: list[Seg] | None) -> list[Seg]:
        out: list[Seg] = []
        pos = 0
        for m in _TEMPLATE_PART.finditer(template):
            if m.start() > pos:
                out.append(_plain(template[pos : m.start()]))
            slot = m.group(1)
            if slot == "x":
                assert main is not None
                out.extend(main)
            elif slot in _PII_GEN:
                out.extend(self.pii_item(slot))
            else:
                out.extend(_public(self.rng, slot))
            pos = m.end()
        if pos < len(template):
            out.append(_plain(template[pos:]))
        return out

    def pii_clause_main(self) -> tuple[str, list[Seg]]:
        kind = self.kinds.next()
        segs = self.pii_item(kind)
        fmt = next(s[2] for s in segs if s[3])
        return _group_for(kind, fmt, self.rng), segs

    def decorate(self, clauses: list[list[Seg]]) -> list[Seg]:
        rng = self.rng
        out: list[Seg] = []
        if rng.random() < 0.2:  # a reply: leading @handles
            for _ in range(rng.choice((1, 1, 2))):
                out += _public(rng, "handle") + [_plain(" ")]
        for i, clause in enumerate(clauses):
            if i:
                ended = out[-1][0][-1] in ".!?…)🙏✨🙌📈🎄🤦😱🙃☕🐶📱🍷🥘🍕🚲"
                out.append(
                    _plain(rng.choice((" ", " ", "\n") if ended else (". ", ". ", " — ", "\n", " | ")))
                )
            out += clause
        r = rng.random()
        if r < 0.12:
            out += [_plain(" ")] + _public(rng, "link")
        elif r < 0.24:
            out += [_plain(" ")] + _public(rng, "hashtag")
        elif r < 0.3:
            out += [_plain(" ")] + _public(rng, "hashtag") + [_plain(" ")] + _public(rng, "link")
        return out

    def case(self, case_id: int, with_pii: bool) -> Case:
        rng = self.rng
        if with_pii:
            n = rng.choices((1, 2, 3), weights=(55, 35, 10))[0]
            mains = [self.pii_clause_main()]
            for _ in range(n - 1):
                mains.append(self.pii_clause_main() if rng.random() < 0.5 else ("public", None))
        else:
            mains = [("public", None)] * rng.choices((1, 2, 3), weights=(50, 40, 10))[0]
        for attempt in range(40):
            use = mains if attempt < 30 else mains[:1]  # drop extra clauses if they never fit
            clauses = [self.render(self.templates[g].next(), segs) for g, segs in use]
            segs = self.decorate(clauses) if attempt < 35 else [s for c in clauses for s in c]
            if sum(len(s[0]) for s in segs) <= MAX_LEN:
                break
        else:
            segs = mains[0][1] or _public(rng, "hashtag")
        return _assemble(case_id, segs)


def _assemble(case_id: int, segs: list[Seg]) -> Case:
    pos = 0
    parts: list[str] = []
    pii: list[Item] = []
    public: list[Item] = []
    for text, kind, fmt, is_pii in segs:
        if kind is not None:
            (pii if is_pii else public).append(Item(kind, fmt, pos, pos + len(text)))
        parts.append(text)
        pos += len(text)
    return Case(case_id, "".join(parts), tuple(pii), tuple(public))


def build_corpus(seed: int = DEFAULT_SEED, n_cases: int = DEFAULT_CASES) -> list[Case]:
    """`n_cases` labelled cases, the same for the same seed on every machine."""
    if n_cases < 1:
        raise ValueError("n_cases must be positive")
    gen = _Generator(seed)
    n_clean = max(1, round(n_cases * NO_PII_SHARE)) if n_cases >= 3 else 0
    flags = [False] * n_clean + [True] * (n_cases - n_clean)
    gen.rng.shuffle(flags)
    cases = [gen.case(i, with_pii) for i, with_pii in enumerate(flags)]
    validate(cases)
    return cases


def validate(cases: list[Case]) -> None:
    """Check the corpus's own promises; raises AssertionError on a broken case."""
    for c in cases:
        assert len(c.text) <= MAX_LEN, (c.id, len(c.text))
        spans = sorted(c.pii + c.public, key=lambda it: it.start)
        for a, b in zip(spans, spans[1:]):
            assert a.end <= b.start, (c.id, a, b)
        for it in spans:
            assert 0 <= it.start < it.end <= len(c.text), (c.id, it)
            assert any(ch.isalnum() for ch in c.text[it.start : it.end]), (c.id, it)
        for it in c.pii:
            assert it.kind in PII_KINDS, it
            s = c.text[it.start : it.end]
            if it.kind == "card":
                assert luhn_valid(re.sub(r"\D", "", s)), s
            elif it.kind == "iban":
                assert iban_valid(s.replace(" ", "")), s
            elif it.kind == "ip":
                ipaddress.ip_address(s)
        for it in c.public:
            assert it.kind in PUBLIC_CATEGORIES, it
            s = c.text[it.start : it.end]
            if it.kind == "bad_iban":
                assert not iban_valid(s.replace(" ", "")), s
            elif it.kind == "non_luhn_16" or (it.kind == "order_number" and len(re.sub(r"\D", "", s)) >= 13):
                assert not luhn_valid(re.sub(r"\D", "", s)), s


def fingerprint(cases: list[Case]) -> str:
    """A short hash of the texts and labels, to tell whether two runs measured the same corpus."""
    h = hashlib.sha256()
    for c in cases:
        h.update(json.dumps([c.text, [(i.kind, i.fmt, i.start, i.end) for i in c.pii + c.public]]).encode())
    return h.hexdigest()[:12]


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES)
    ap.add_argument("--show", type=int, default=5, help="print this many cases with their spans")
    args = ap.parse_args(argv)
    cases = build_corpus(args.seed, args.cases)
    pii = Counter(i.kind for c in cases for i in c.pii)
    fmts = Counter(f"{i.kind}/{i.fmt}" for c in cases for i in c.pii)
    pub = Counter(i.kind for c in cases for i in c.public)
    print(
        f"{len(cases)} cases, {sum(not c.pii for c in cases)} without PII, fingerprint {fingerprint(cases)}"
    )
    print("PII items:   ", dict(sorted(pii.items())), f"({len(fmts)} formats)")
    print("public items:", dict(sorted(pub.items())))
    print("rarest formats:", sorted(fmts.items(), key=lambda kv: kv[1])[:8])
    for c in cases[: args.show]:
        print(f"\n#{c.id} {c.text!r}")
        for it in sorted(c.pii + c.public, key=lambda it: it.start):
            tag = "PII" if it in c.pii else "pub"
            print(f"   {tag} {it.kind}/{it.fmt} [{it.start},{it.end}) {c.text[it.start:it.end]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
