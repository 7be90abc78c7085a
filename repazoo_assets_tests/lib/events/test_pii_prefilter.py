"""The pre-filter in front of the PII detector never lets a string through unscanned that the
detector would change."""

import random

import pyarrow as pa
import pytest

from bench.pii_corpus import build_corpus
from repazoo_assets.lib.events.privacy_levels import TransformCache, may_hold_pii, redact_strings
from repazoo_assets.lib.privacy import pii
from repazoo_assets.lib.privacy.pii import find_pii, redact

# Shapes the detector knows that a corpus of tweets may hold rarely: letter-only secrets and
# addresses, IPv6 without digits, full-width and other non-ASCII forms it normalizes.
TRICKY = [
    "jane at example dot com", "jane (at) example (dot) com", "jane [at] example.com", "jane\u00a0at\u00a0example.com",
    "jane\uff20example.com", "reach jane @ example.com", "my password is hunter", "PASSWORD: hunter",
    "api_key=abcdefghij", "pin is secretvalue", "Bearer abcdefghijklmnopqrstuvwxyzABCDEF",
    "fe::ab", "fe80::dead:beef", "abcd:ef01:abcd:ef01:abcd:ef01:abcd:ef01", "dead\uff1a\uff1abeef",
    "sk-abcdefghijklmnopqrstuvwxyzABCD", "sk\uff0dabcdefghijklmnopqrstuvwxyzABCD", "ghp_" + "a" * 36,
    "github_pat_" + "a" * 30, "xoxb-abcdefghijklmnop", "hooks.slack.com/services/" + "A" * 30,
    "sk_live_" + "a" * 24, "whsec_" + "a" * 30, "AIza" + "a" * 35, "GOCSPX-" + "a" * 28,
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.abcdefghijk", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA",
    "call \uff10\uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff19\uff15\uff18", "\u0660\u0661\u0662.\u0661.\u0661.\u0661",
    "203.0.113.7", "+44 20 7946 0958", "DE89 3704 0044 0532 0130 00",
    # Full-width brackets the detector reads as ASCII ones (it redacts these as addresses).
    "jane\uff08at\uff09example.com", "contact jane\uff08at\uff09example\uff08dot\uff09com",
    "jane.doe\uff08at\uff09gmail.com please",
]

# Personal data of every shape the detector normalizes into: between them they hold every ASCII
# character its normalization table maps to (digits, space, - @ . + ( ) / : =).
SEEDS = [
    "jane(at)example(dot)com", "jane (at) example.com", "jane at example dot com", "jane@example.com",
    "reach jane @ example.com", "call +44 20 7946 0958", "phone (212) 555-0134", "SSN 078-05-1120",
    "card 4111 1111 1111 1111", "203.0.113.7", "fe80::dead:beef", "dead::beef",
    "https://shop.example.com/?email=jane@example.com", "api_key=abcdefghij", "password: hunter2",
    "sk-abcdefghijklmnopqrstuvwxyzABCD", "https://hooks.slack.com/services/T0000/B0000/" + "X" * 24,
    "DE89 3704 0044 0532 0130 00", "born 1985-07-23 in 6789", "jane [at] example.com",
]


def corpus_texts():
    texts = [case.text for case in build_corpus()] + TRICKY
    # Each text also cut at random points: a detector finding in a fragment must pass too.
    rng = random.Random(5)
    for text in list(texts):
        for _ in range(3):
            a, b = sorted(rng.sample(range(len(text) + 1), 2)) if len(text) > 1 else (0, len(text))
            texts.append(text[a:b])
    return texts


def test_every_string_the_detector_changes_passes_the_pre_filter():
    texts = corpus_texts()
    flags = may_hold_pii(pa.array(texts, pa.string())).to_pylist()
    changed = [t for t in texts if redact(t) != t]
    assert len(changed) > 1000  # the corpus does exercise the detector
    missed = [t for t, flag in zip(texts, flags, strict=True) if find_pii(t) and not flag]
    assert missed == []
    # ...and it does filter: most strings without personal data are not scanned.
    skipped = sum(1 for t, flag in zip(texts, flags, strict=True) if not flag)
    assert skipped > 0


@pytest.mark.parametrize("text", ["pro", "page_view", "Firefox", "https://shop.example.com/p/home", "checkout step"])
def test_plain_values_are_not_scanned(text):
    assert may_hold_pii(pa.array([text])).to_pylist() == [False]


def test_redact_strings_equals_the_detector_and_caches():
    texts = corpus_texts()[:600] + ["pro", "pro"]
    cache = TransformCache()
    assert redact_strings(texts, cache) == [redact(t) for t in texts]
    assert redact_strings(texts, cache) == [redact(t) for t in texts]  # from the cache
    assert cache.redacted["pro"] == "pro"


def test_every_character_the_detector_normalizes_passes_the_pre_filter():
    """Each seed with one character, then all its occurrences, replaced by each non-ASCII
    character the detector reads as it: no variant the detector changes may be skipped."""
    equivalents: dict[str, list[str]] = {}
    for code, ascii_char in pii._NORMALIZE.items():
        equivalents.setdefault(ascii_char, []).append(chr(code))
    variants: dict[str, int] = {}  # variant -> the table entry it exercises
    for seed in SEEDS:
        for i, ch in enumerate(seed):
            for other in equivalents.get(ch, ()):
                variants[seed[:i] + other + seed[i + 1:]] = ord(other)
                variants[seed.replace(ch, other)] = ord(other)
    texts = list(variants)
    flags = may_hold_pii(pa.array(texts, pa.string())).to_pylist()
    changed = [redact(t) != t for t in texts]
    missed = [t for t, flag, change in zip(texts, flags, changed, strict=True) if change and not flag]
    assert missed == []
    # Every entry of the table was exercised by a variant the detector redacts.
    exercised = {variants[t] for t, change in zip(texts, changed, strict=True) if change}
    assert set(pii._NORMALIZE) - exercised == set()
