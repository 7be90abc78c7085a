"""Each privacy level's output, field by field."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from repazoo_assets.lib.events.export import SCHEMA
from repazoo_assets.lib.events.privacy_levels import TransformCache, apply_level, browser_family

KEY = b"k" * 32
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def pseudonym(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


def events(*rows):
    base = {
        "id": 1, "client_id": "acme", "event_type": "signup", "ip_address": "203.0.113.7", "user_agent": FIREFOX,
        "url": "https://acme.example.com/signup?email=jane.doe@gmail.com&ref=x#top",
        "payload": json.dumps({
            "user_id": "u-42", "email": "jane.doe@gmail.com", "plan": "pro", "comment": "call me on +44 20 7946 0958",
            "items": [{"sku": "A1", "note": "for jane.doe@gmail.com"}], "amount": 12.5,
        }),
        "consent_analytics": True, "consent_marketing": False, "created_at": datetime(2026, 11, 22, 10, 5, tzinfo=UTC),
    }
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=SCHEMA)


def test_standard_is_unchanged():
    table = events({}, {"id": 2, "consent_analytics": False})
    result = apply_level(table, "standard", KEY)
    assert result.table.equals(table) and not result.dropped


def test_gdpr_pseudonymizes_drops_and_redacts():
    result = apply_level(events({}, {"id": 2, "consent_analytics": False}, {"id": 3, "consent_analytics": None}), "gdpr", KEY)
    assert dict(result.dropped) == {"no analytics consent": 2}
    row = result.table.to_pylist()[0]
    assert row["ip_address"] == pseudonym("203.0.113.7")
    assert row["user_agent"] == "Firefox"
    assert row["url"] == "https://acme.example.com/signup?email=[EMAIL]&ref=x#top"
    payload = json.loads(row["payload"])
    assert payload == {
        "user_id": pseudonym("u-42"), "plan": "pro", "comment": "call me on [PHONE]",
        "items": [{"sku": "A1", "note": "for [EMAIL]"}], "amount": 12.5,
    }
    assert (row["id"], row["event_type"], row["created_at"]) == (1, "signup", datetime(2026, 11, 22, 10, 5, tzinfo=UTC))


def test_hipaa_also_removes_query_strings_and_free_text():
    row = apply_level(events({}), "hipaa", KEY).table.to_pylist()[0]
    assert row["url"] == "https://acme.example.com/signup"
    payload = json.loads(row["payload"])
    assert payload == {"user_id": pseudonym("u-42"), "plan": "pro", "items": [{"sku": "A1"}], "amount": 12.5}


@pytest.mark.parametrize("level", ["gdpr", "hipaa"])
def test_no_raw_ip_or_email_survives(level):
    table = apply_level(events({}, {"id": 2, "ip_address": "2001:db8::1", "payload": None, "url": None}), level, KEY).table
    text = json.dumps(table.to_pylist(), default=str)
    for datum in ("203.0.113.7", "2001:db8::1", "jane.doe@gmail.com", "7946 0958"):
        assert datum not in text
    assert table.column("payload").to_pylist()[1] is None and table.column("url").to_pylist()[1] is None


def test_bad_level_and_browser_families():
    with pytest.raises(ValueError, match="privacy level must be one of standard, gdpr, hipaa"):
        apply_level(events({}), "secret", KEY)
    assert browser_family("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 Edg/124.0") == "Edge"
    assert browser_family("Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Version/17.4 Mobile/15E148 Safari/604.1") == "Safari"
    assert browser_family("curl/8.5") == "Other" and browser_family(None) is None


def test_cache_is_bounded_and_tied_to_its_key():
    cache = TransformCache(limit=15)
    for n in range(4):  # 10 new field names per call: unbounded, 40 decisions would be kept
        fields = {f"field_{n}_{i}": i for i in range(10)}
        apply_level(events({"payload": json.dumps(fields)}), "gdpr", KEY, cache)
        assert len(cache.decisions[False]) <= 20
    with pytest.raises(ValueError, match="another pseudonymization key"):
        apply_level(events({}), "gdpr", b"j" * 32, cache)
    assert apply_level(events({}), "hipaa", KEY, cache).table.num_rows == 1  # same key: still usable
