"""The compiled PII engine gives exactly the findings of the pure-Python reference.

Same kinds, same code-point offsets, on the benchmark corpus (the benchmark's seed and a held-out
one, text by text and in batches) and on generated texts built to hit the edges of every scan:
digit runs with every separator, '@' and spelled-out addresses, hex and colons, IBAN-like codes,
key prefixes, non-ASCII digits, spaces and full-width punctuation, separators between texts.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import pytest

from bench.pii_corpus import DEFAULT_SEED, build_corpus
from repazoo_assets.lib.privacy import pii

needs_compiled = pytest.mark.skipif(
    pii._fast is None, reason=f"the compiled engine is not active (engine: {pii.ENGINE})"
)


def _python(texts: list[str]) -> list[list[pii.Finding]]:
    return pii._find_pii_many_python(texts)


def _compiled(texts: list[str]) -> list[list[pii.Finding]]:
    return pii._fast.find_many(texts)


def _assert_same(texts: list[str]) -> None:
    expected = _python(texts)
    got = _compiled(texts)
    for text, e, g in zip(texts, expected, got, strict=True):
        assert [tuple(f) for f in g] == [tuple(f) for f in e], repr(text)
    # and the same redaction (placeholders and counts per kind)
    assert pii._fast.apply_many(texts, got, True) == [pii._apply(t, f) for t, f in zip(texts, expected)]


@needs_compiled
def test_the_active_engine_is_the_compiled_one():
    assert pii.ENGINE == "compiled"
    assert pii.find_pii("mail jane@example.com") == [pii.Finding("email", 5, 21)]


@needs_compiled
@pytest.mark.parametrize("seed", [DEFAULT_SEED, 7, 99])
def test_same_findings_on_the_benchmark_corpus(seed):
    texts = [c.text for c in build_corpus(seed, 1200)]
    for i in range(0, len(texts), 500):
        _assert_same(texts[i : i + 500])
    for text in texts:  # one call each, as find_pii makes it
        assert _compiled([text]) == _python([text]), repr(text)


# Pieces the generator glues together; each is an edge of one scan or judgement.
_ATOMS = (
    "0123456789", "555", "123-45-6789", "4111 1111 1111 1111", "4111-1111-1111-1112", "+44", "+1 ",
    "(0)", "(", ")", "/", "-", ".", " ", "  ", "\t", "\n", "00", "0", "1", "19", "20", "2024",
    "12.05.2024", "10.0.0.1", "256", "@", "@example.com", "jane", ".doe", " at ", " dot ", "[at]",
    "(dot)", "gmail", "com", "co", "io", "info", "DE89 3704 0044 0532 0130 00", "DE", "GB82", "WEST",
    "IT45 Z313", "AB12", "2001:db8::1", "::", ":", "fe80", "a:b:c:d:e:f", "ffff", "SSN: ",
    "social security no. ", "password: ", "pwd=", "token is ", "Bearer ", "sk-", "sk-ant-api03-",
    "AKIA", "ghp_", "xoxb-", "eyJ", "-----BEGIN PRIVATE KEY-----", "AIza", "ya29.", "abcDEF",
    "x", "_", "$", "#", "%", "€", "é", "١٢٣", "０３０", "１２３４", "＠", "．", "＋", "（", "）",
    "\u00a0", "\u2009", "\u2013", "𝟏𝟐", "\u2028", "\x85", "ſsn", "K", "\x00", "?", "'", '"',
)
_CHARS = "0123456789 .-/()+@:_ABCDEFXYZabcdefxyz\t\n#$%'\"=" + "١٠０＠．\u00a0\u2013é𝟎"


_KEY_PREFIXES = (
    "sk-", "sk-ant-api03-", "sk-ant-admin01-", "sk-proj-", "sk-svcacct-", "AKIA", "ASIA", "ghp_", "gho_",
    "github_pat_", "xoxb-", "xoxp-", "hooks.slack.com/services/", "hooks.slack.com/workflows/", "sk_live_",
    "rk_test_", "whsec_", "AIza", "ya29.", "GOCSPX-", "eyJ", ".eyJ", "Bearer ", "bearer\t", "BEARER  ",
    "password: ", "Password is ", "pwd=", "API_KEY = '", 'token: "', "client secret=", "pin: ", "[EMAIL]",
    "-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n", "-----BEGIN ENCRYPTED  PRIVATE KEY-----\n",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB\n\n",
)
_KEY_SUFFIXES = ("", "", "-----END PRIVATE KEY-----", "\n-----END RSA PRIVATE KEY-----", "-----END", " PRIVATE KEY-----")
_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./+~="


def _key_like(rng: random.Random) -> str:
    # A provider prefix and a run whose length sits around the bounds the patterns count.
    length = rng.choice((rng.randint(0, 45), rng.randint(190, 310)))
    upper = rng.random() < 0.3
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if upper else _KEY_CHARS
    body = "".join(rng.choice(chars) for _ in range(length))
    return rng.choice(_KEY_PREFIXES) + body + rng.choice(_KEY_SUFFIXES)


def _fuzz_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 14)):
        r = rng.random()
        if r < 0.08:
            parts.append(_key_like(rng))
        elif r < 0.55:
            parts.append(rng.choice(_ATOMS))
        elif r < 0.8:
            parts.append("".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 12))))
        else:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20))))
    return "".join(parts)


@needs_compiled
def test_same_findings_on_generated_texts():
    rng = random.Random(20240315)
    texts = [_fuzz_text(rng) for _ in range(6000)]
    for i in range(0, len(texts), 50):  # in batches: separators between texts matter too
        _assert_same(texts[i : i + 50])
    for text in texts[:2000]:
        _assert_same([text])


@needs_compiled
def test_same_findings_on_corpus_texts_cut_and_spliced():
    # Real tweets cut at random places and glued to each other and to generated pieces.
    rng = random.Random(3)
    corpus = [c.text for c in build_corpus(11, 1200)]
    texts = []
    for _ in range(3000):
        a, b = rng.choice(corpus), rng.choice(corpus)
        i, j = rng.randrange(len(a) + 1), rng.randrange(len(b) + 1)
        texts.append(a[:i] + rng.choice(("", " ", _fuzz_text(rng))) + b[j:])
    for i in range(0, len(texts), 100):
        _assert_same(texts[i : i + 100])


@needs_compiled
def test_same_errors():
    for bad in (None, b"bytes", 3):
        with pytest.raises(TypeError):
            pii.find_pii_many(["ok", bad])
    assert _compiled([]) == []
    assert _compiled(["", ""]) == [[], []]


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


_FALLBACK_CHECK = """
    from repazoo_assets.lib.privacy import pii
    assert pii.ENGINE == "python", pii.ENGINE
    assert pii.find_pii("mail jane@example.com") == [pii.Finding("email", 5, 21)]
    assert pii.redact_many(["call +44 20 7946 0958", "ok"]) == ["call [PHONE]", "ok"]
    assert pii.redact_with_counts("4111 1111 1111 1111") == ("[CARD]", {"card": 1})
    print("fallback ok")
"""


def test_the_python_engine_can_be_chosen():
    done = _run_python(_FALLBACK_CHECK, REPAZOO_PII_ENGINE="python")
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout
    assert "not usable" not in done.stderr  # chosen, not a failure: no warning


def test_without_the_extension_the_python_engine_runs_and_one_warning_says_why():
    # The extension made unimportable, as on a machine where it was never built.
    code = (
        "import sys\n"
        "sys.modules['repazoo_assets.lib.privacy._pii_fast'] = None\n"
        + textwrap.dedent(_FALLBACK_CHECK)
    )
    done = _run_python(code, REPAZOO_PII_ENGINE="")
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "compiled engine is not usable" in line]
    assert len(warnings) == 1, done.stderr
    assert "ImportError" in warnings[0] or "ModuleNotFoundError" in warnings[0]
    assert "jane" not in done.stderr and "7946" not in done.stderr
