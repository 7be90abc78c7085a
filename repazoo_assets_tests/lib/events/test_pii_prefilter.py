"""The pre-filter in front of the PII detector never lets a string through unscanned that the
detector would change."""

import random

import pyarrow as pa
import pytest

from bench.pii_corpus import build_corpus
from repazoo_assets.lib.events.privacy_levels import TransformCache, may_hold_pii, redact_strings
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
