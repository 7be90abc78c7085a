"""The PII detector: every kind found in the forms people type, public parts of tweets kept."""

from __future__ import annotations

import time

import pytest

from repazoo_assets.lib.privacy.pii import (
    PII_KINDS,
    PLACEHOLDERS,
    Finding,
    find_pii,
    find_pii_many,
    redact,
    redact_many,
    redact_with_counts,
)

# (kind, value): each is planted inside ordinary tweet text and must be found whole, as its kind.
POSITIVE = [
    ("email", "jane.doe@gmail.com"),
    ("email", "J.Doe+news@mail.example.co.uk"),
    ("email", "jane dot doe at gmail dot com"),
    ("email", "jane[at]example.com"),
    ("email", "jane (at) example (dot) com"),
    ("email", "jane.doe @ gmail.com"),
    ("phone", "+14155552671"),
    ("phone", "(555) 123-4567"),
    ("phone", "555.123.4567"),
    ("phone", "555-123-4567"),
    ("phone", "+1 415 555 2671"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+44 (0)20 7946 0958"),
    ("phone", "020 7946 0958"),
    ("phone", "07700 900123"),
    ("phone", "+49 30 12345678"),
    ("phone", "030 12345678"),
    ("phone", "0151 23456789"),
    ("phone", "030/1234567"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "06 12 34 56 78"),
    ("phone", "06.12.34.56.78"),
    ("phone", "+34 612 34 56 78"),
    ("phone", "+39 06 1234 5678"),
    ("phone", "+31 6 12345678"),
    ("card", "4111 1111 1111 1111"),
    ("card", "4111-1111-1111-1111"),
    ("card", "4111111111111111"),
    ("card", "5500 0000 0000 0004"),
    ("card", "3782 822463 10005"),
    ("card", "6011111111111117"),
    ("ip", "192.168.1.20"),
    ("ip", "8.8.8.8"),
    ("ip", "2001:db8::1"),
    ("ip", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ip", "::ffff:192.0.2.1"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "DE89370400440532013000"),
    ("iban", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "NL91ABNA0417164300"),
    ("ssn", "123-45-6789"),
    ("ssn", "078 05 1120"),
    ("secret", "sk-ant-api03-" + "a1B2c3D4e5" * 9),
    ("secret", "sk-proj-" + "Zz09" * 12),
    ("secret", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "ghp_" + "A1b2C3d4E5f6" * 3),
    ("secret", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("secret", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("secret", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"[8:]),
    ("secret", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("secret", "rk_test_" + "51H8x2bLkdIwHu7ixZ9z"),
    ("secret", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("secret", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    (
        "secret",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----",
    ),
]


@pytest.mark.parametrize(("kind", "value"), POSITIVE, ids=[f"{k}:{v[:24]}" for k, v in POSITIVE])
@pytest.mark.parametrize(
    "template",
    ["{}", "reach me at {} thanks!", "@support my details: {}. #help https://t.co/AbC123xyz"],
    ids=["alone", "sentence", "tweet"],
)
def test_each_kind_is_found_whole_and_typed(kind, value, template):
    text = template.format(value)
    start = text.index(value)
    findings = find_pii(text)
    assert findings == [Finding(kind, start, start + len(value))]
    redacted = redact(text)
    assert redacted == template.format(PLACEHOLDERS[kind])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("password: hunter2", "hunter2"),
        ("pwd=S3cr3t!x", "S3cr3t!x"),
        ("passwd = 'correct horse'", "correct horse"),
        ("my password is tr0ub4dor and I don't care", "tr0ub4dor"),
        ("API_KEY=abcd1234efgh", "abcd1234efgh"),
        ("client secret: 9f8e7d6c5b", "9f8e7d6c5b"),
        ("Authorization: Bearer abcdefghijklmnop1234567890", "abcdefghijklmnop1234567890"),
    ],
)
def test_assignments_and_bearer_tokens_redact_the_value_only(text, value):
    start = text.index(value)
    assert find_pii(text) == [Finding("secret", start, start + len(value))]
    assert value not in redact(text)
    assert text[:start] in redact(text)  # "password:" and "Bearer" stay


PUBLIC = [
    "@jane_doe99 and @acme.com are handles",
    "#2024 #DE89 #GDPR are hashtags, $TSLA $AAPL are cashtags",
    "read https://t.co/AbC123xyz and https://t.co/4111111111",
    "3 days, 1,000 fans, 42% up, 3-1 win, 9am, 10:30 and 10:30:45",
    "on 2024-03-15, 15/03/2024, 03/15/2024, 15.03.2024 or March 15, 2024",
    "only $1,299.99 or €49 or £5.50 (was $2,000)",
    "upgrade to v2.3.4, dagster 1.13.27, python 3.11.7",
    "order 4111111111111112 and ref 1234 5678 9012 3456 are not cards",
    "DE00 3704 0044 0532 0130 00 fails its checksum",
    "ssn 000-12-3456 and 666-45-6789 are invalid",
    "999.1.1.1 and 1.2.3 are not addresses; std::vector and a::b are code",
    "tokens=3 spin: 5 the password field is required",
    "meet me at the office at 10",
    "ask-me-anything-about-our-new-release-today",
    "task-force alpha, skill-based, disk-0123456789abcdefghij",
    "Tweet id 1712345678901234567 in a URL https://x.com/a/status/1712345678901234567",
]


@pytest.mark.parametrize("text", PUBLIC)
def test_public_parts_of_tweets_are_kept(text):
    assert find_pii(text) == []
    assert redact(text) == text


def test_overlapping_findings_merge_and_nothing_between_them_leaks():
    text = "wire to DE89 3704 0044 0532 0130 00 or card 4111 1111 1111 1111 from 10.0.0.1"
    assert redact(text) == "wire to [IBAN] or card [CARD] from [IP]"
    redacted, counts = redact_with_counts(text)
    assert counts == {"iban": 1, "card": 1, "ip": 1}


def test_non_ascii_text_keeps_offsets_and_finds_typographic_forms():
    text = "Ruf an: +49\u00a030\u00a012345678 — oder ０３０ 12345678, José: josé.pérez@correo.es 😀"
    findings = find_pii(text)
    assert [f.kind for f in findings] == ["phone", "phone", "email"]
    assert [text[f.start : f.end] for f in findings] == [
        "+49\u00a030\u00a012345678",
        "０３０ 12345678",
        "josé.pérez@correo.es",
    ]
    assert redact(text) == "Ruf an: [PHONE] — oder [PHONE], José: [EMAIL] 😀"


def test_batch_gives_the_same_findings_as_one_text_at_a_time():
    texts = [template.format(value) for kind, value in POSITIVE for template in ("{}", "x {} y")]
    texts += PUBLIC + ["", "SSN:", "123456789", "ssn: 123456789", "password:", "hunter2 é"]
    assert find_pii_many(texts) == [find_pii(t) for t in texts]
    assert redact_many(texts) == [redact(t) for t in texts]
    # A batch never joins texts: context from one text does not make the next one a finding.
    assert find_pii_many(["SSN:", "123456789"]) == [[], []]
    assert find_pii_many(["password:", "hunter2"]) == [[], []]


@pytest.mark.parametrize("bad", [None, 42, b"jane@example.com", ["jane@example.com"]])
def test_non_string_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="expected str"):
        find_pii(bad)
    with pytest.raises(TypeError, match="expected str"):
        redact(bad)
    with pytest.raises(TypeError, match="expected str"):
        find_pii_many(["ok", bad])


def test_redacting_twice_changes_nothing():
    texts = [f"{k} {v}, password: {v}, pwd={v}" for k, v in POSITIVE] + PUBLIC
    once = redact_many(texts)
    assert redact_many(once) == once
    assert all(find_pii(t) == [] for t in once)


def test_empty_text():
    assert find_pii("") == []
    assert redact("") == ""
    assert find_pii_many([]) == []


@pytest.mark.parametrize(
    "adversarial",
    [
        "1" * 1_000_000,
        "1 " * 500_000,
        "1.1." * 250_000,
        "+(" * 500_000,
        "a@" * 500_000,
        "a@b." * 250_000,
        " at x dot" * 111_112,
        "ask-" * 250_000,
        "eyJ" * 333_334,
        "-----BEGIN PRIVATE KEY-----" + "A" * 1_000_000,
        "password: " * 100_000,
        "DE89 " * 200_000,
        ":" * 1_000_000,
        "f:" * 500_000,
        # Long runs in which a candidate starts every few characters (the compiled engine
        # remembers where a run ends instead of measuring it again).
        "github_pat_" * 90_000,
        "xoxb-" * 200_000,
        "aaaa:bbbb:cccc:" * 66_667,
        "x at a.a" + ".a" * 499_996,
        "2001:db8::" * 100_000,
    ],
    ids=lambda s: repr(s[:10]),
)
def test_a_megabyte_of_adversarial_input_completes(adversarial):
    # Linear time: RE2 cannot backtrack, and every Python-side check is bounded per candidate.
    # The bound is generous (a slow CI machine); catastrophic backtracking would take hours.
    started = time.perf_counter()
    redacted = redact(adversarial)
    assert time.perf_counter() - started < 30
    assert isinstance(redacted, str)


def test_every_kind_has_a_placeholder():
    assert set(PLACEHOLDERS) == set(PII_KINDS)
    assert {kind for kind, _ in POSITIVE} == set(PII_KINDS)


def test_planted_demo_personal_data_never_survives_redaction():
    from datetime import UTC, datetime

    from repazoo_assets.lib.demo.generator import generate_dataset

    dataset = generate_dataset(3, users=10, tweets_per_user=60, anchor=datetime(2026, 1, 1, tzinfo=UTC))
    tweets = [t for u in dataset.users for t in u.tweets]
    planted = [(t, kind, value) for t in tweets for kind, value in t.planted_pii]
    assert len({kind for _, kind, _ in planted}) == len(PII_KINDS)
    redacted = redact_many([t.text for t in tweets])
    by_id = {t.tweet_id: r for t, r in zip(tweets, redacted, strict=True)}
    leaked = [(kind, value) for t, kind, value in planted if value in by_id[t.tweet_id]]
    assert leaked == []
