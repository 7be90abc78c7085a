"""The deterministic demo-data generator: determinism, input validation and the shape of the data."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from repazoo_assets.lib.demo.generator import (
    FREQUENCIES,
    PII_KINDS,
    PRIVACY_LEVELS,
    DemoClient,
    DemoDataset,
    DemoEvent,
    DemoTweet,
    DemoUser,
    generate_dataset,
)

ANCHOR = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
# Twitter's published snowflake epoch (2010-11-04T01:42:54.657Z), stated here independently of the module.
TWITTER_EPOCH_MS = 1288834974657
SMALL = dict(users=3, clients=4, tweets_per_user=12, events=150, anchor=ANCHOR)
DEFECT_KINDS = {"payload_not_json", "unknown_client", "missing_event_type"}


def _tweets(dataset: DemoDataset) -> list[DemoTweet]:
    return [t for u in dataset.users for t in u.tweets]


@pytest.fixture(scope="module")
def small() -> DemoDataset:
    return generate_dataset(11, **SMALL)


@pytest.fixture(scope="module")
def large() -> DemoDataset:
    """Big enough that every PII kind is planted (7 kinds at ~4% each over 360 tweets)."""
    return generate_dataset(5, users=6, clients=3, tweets_per_user=60, events=400, anchor=ANCHOR)


# --- determinism -------------------------------------------------------------------------------


def test_same_arguments_give_equal_datasets_and_fingerprints(small):
    again = generate_dataset(11, **SMALL)
    assert again == small
    assert again.fingerprint() == small.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", small.fingerprint())


def test_different_seed_gives_different_data_and_fingerprint(small):
    other = generate_dataset(12, **SMALL)
    assert other.fingerprint() != small.fingerprint()
    # Not just the recorded seed: the content itself differs.
    assert [t.text for t in _tweets(other)] != [t.text for t in _tweets(small)]
    assert [e.payload for e in other.events] != [e.payload for e in small.events]


def test_fingerprint_changes_when_any_single_value_changes(small):
    user = small.users[-1]
    tweet = user.tweets[-1]
    edited_user = dataclasses.replace(user, tweets=user.tweets[:-1] + (dataclasses.replace(tweet, text=tweet.text + "!"),))
    edited = dataclasses.replace(small, users=small.users[:-1] + (edited_user,))
    assert edited != small
    assert edited.fingerprint() != small.fingerprint()

    event = small.events[0]
    flipped = dataclasses.replace(event, consent_marketing=not event.consent_marketing)
    edited = dataclasses.replace(small, events=(flipped,) + small.events[1:])
    assert edited.fingerprint() != small.fingerprint()


def test_fingerprint_is_the_same_in_a_fresh_process_with_other_hash_seed_and_timezone(small):
    """Byte-for-byte determinism must not hinge on str-hash randomisation or the local timezone."""
    code = (
        "from datetime import datetime, UTC\n"
        "from repazoo_assets.lib.demo.generator import generate_dataset\n"
        f"print(generate_dataset(11, users={SMALL['users']}, clients={SMALL['clients']}, "
        f"tweets_per_user={SMALL['tweets_per_user']}, events={SMALL['events']}, "
        f"anchor=datetime.fromisoformat({ANCHOR.isoformat()!r})).fingerprint())\n"
    )
    for hash_seed, tz in (("1", "Pacific/Auckland"), ("4242", "America/Los_Angeles")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TZ": tz}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == small.fingerprint()


def test_default_anchor_is_a_fixed_instant_not_now():
    first = generate_dataset(3, users=1, clients=3, tweets_per_user=3, events=3)
    second = generate_dataset(3, users=1, clients=3, tweets_per_user=3, events=3)
    assert first == second
    assert first.anchor.tzinfo is not None and first.anchor.utcoffset() == timedelta(0)
    explicit = generate_dataset(3, users=1, clients=3, tweets_per_user=3, events=3, anchor=first.anchor)
    assert explicit == first


@pytest.mark.parametrize(
    "anchor",
    [datetime(2013, 6, 1, 8, 30, tzinfo=UTC), datetime(2041, 1, 1, tzinfo=UTC)],
    ids=["past", "future"],
)
def test_all_timestamps_follow_the_anchor_not_the_clock(anchor):
    ds = generate_dataset(8, users=2, clients=3, tweets_per_user=10, events=50, anchor=anchor)
    assert ds.anchor == anchor
    for tweet in _tweets(ds):
        assert anchor - WEEK <= tweet.created_at <= anchor - timedelta(seconds=60)
    for event in ds.events:
        assert anchor - WEEK <= event.created_at < anchor
    for user in ds.users:
        assert anchor - timedelta(days=331) <= user.created_at <= anchor - timedelta(days=30)


def test_shifting_the_anchor_shifts_every_timestamp_and_nothing_random():
    base = generate_dataset(21, users=2, clients=3, tweets_per_user=15, events=60, anchor=ANCHOR)
    delta = timedelta(days=400, hours=5, seconds=17)
    moved = generate_dataset(21, users=2, clients=3, tweets_per_user=15, events=60, anchor=ANCHOR + delta)
    for u0, u1 in zip(base.users, moved.users, strict=True):
        assert (u0.handle, u0.twitter_user_id, u0.email) == (u1.handle, u1.twitter_user_id, u1.email)
        assert u1.created_at - u0.created_at == delta
        for t0, t1 in zip(u0.tweets, u1.tweets, strict=True):
            assert t1.created_at - t0.created_at == delta
            assert (t0.planted_pii, t0.hashtags, t0.mentions, t0.urls) == (t1.planted_pii, t1.hashtags, t1.mentions, t1.urls)
    for e0, e1 in zip(base.events, moved.events, strict=True):
        assert e1.created_at - e0.created_at == delta
        assert (e0.payload, e0.client_id, e0.event_type, e0.defect) == (e1.payload, e1.client_id, e1.event_type, e1.defect)


def test_same_instant_in_another_timezone_gives_the_same_dataset(small):
    plus_two = ANCHOR.astimezone(timezone(timedelta(hours=2)))
    ds = generate_dataset(11, **{**SMALL, "anchor": plus_two})
    assert ds.anchor.utcoffset() == timedelta(0)
    assert ds == small
    assert ds.fingerprint() == small.fingerprint()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("users", 0),
        ("users", -1),
        ("users", 2.0),
        ("clients", 2),
        ("clients", 0),
        ("clients", "3"),
        ("tweets_per_user", 0),
        ("tweets_per_user", -5),
        ("tweets_per_user", None),
        ("events", 0),
        ("events", -100),
        ("events", 10.5),
    ],
)
def test_invalid_count_raises_value_error_naming_the_parameter(name, value):
    with pytest.raises(ValueError, match=rf"^{name}\b") as excinfo:
        generate_dataset(1, **{name: value})
    assert repr(value) in str(excinfo.value)


def test_naive_anchor_is_rejected():
    with pytest.raises(ValueError, match=r"\banchor\b"):
        generate_dataset(1, anchor=datetime(2026, 1, 1, 12, 0))


@pytest.mark.parametrize(("name", "value"), [("users", 1), ("clients", 3), ("tweets_per_user", 1), ("events", 1)])
def test_minimum_counts_are_accepted(name, value):
    ds = generate_dataset(1, **{"users": 1, "clients": 3, "tweets_per_user": 1, "events": 1, name: value, "anchor": ANCHOR})
    assert len(ds.users) == 1 and len(ds.clients) == 3 and len(ds.events) == 1
    assert [len(u.tweets) for u in ds.users] == [1]


# --- shape of the data -------------------------------------------------------------------------


def test_requested_counts_are_produced(small):
    assert len(small.users) == SMALL["users"]
    assert len(small.clients) == SMALL["clients"]
    assert len(small.events) == SMALL["events"]
    assert all(len(u.tweets) == SMALL["tweets_per_user"] for u in small.users)
    assert all(isinstance(u, DemoUser) for u in small.users)
    assert all(isinstance(c, DemoClient) for c in small.clients)
    assert all(isinstance(e, DemoEvent) for e in small.events)


def test_users_have_unique_ids_valid_handles_and_both_tiers(large):
    users = large.users
    assert len({u.user_id for u in users}) == len(users)
    assert len({u.twitter_user_id for u in users}) == len(users)
    assert all(u.twitter_user_id.isdigit() for u in users)
    assert all(0 < len(u.handle) <= 15 for u in users), [u.handle for u in users]
    assert {u.tier for u in users} == {"basic", "pro"}
    assert all("@" in u.email for u in users)


def test_two_users_get_one_basic_and_one_pro():
    ds = generate_dataset(2, users=2, clients=3, tweets_per_user=1, events=1, anchor=ANCHOR)
    assert sorted(u.tier for u in ds.users) == ["basic", "pro"]


def test_users_never_mention_themselves(large):
    for user in large.users:
        for tweet in user.tweets:
            assert user.handle not in tweet.mentions


def test_clients_cover_all_privacy_levels_and_frequencies():
    ds = generate_dataset(4, users=1, clients=3, tweets_per_user=1, events=5, anchor=ANCHOR)
    assert sorted(c.privacy_level for c in ds.clients) == sorted(PRIVACY_LEVELS)
    assert sorted(c.sync_frequency for c in ds.clients) == sorted(FREQUENCIES)
    assert {"parquet", "jsonl"} == {c.format for c in ds.clients}


@pytest.mark.parametrize("count", [3, 7, 10])
def test_clients_have_unique_ids_buckets_and_prefixes(count):
    ds = generate_dataset(4, users=1, clients=count, tweets_per_user=1, events=5, anchor=ANCHOR)
    clients = ds.clients
    assert len(clients) == count
    for attr in ("client_id", "bucket", "prefix"):
        values = [getattr(c, attr) for c in clients]
        assert len(set(values)) == count, (attr, values)
    assert set(PRIVACY_LEVELS) <= {c.privacy_level for c in clients}
    assert set(FREQUENCIES) <= {c.sync_frequency for c in clients}
    assert all(c.privacy_level in PRIVACY_LEVELS and c.sync_frequency in FREQUENCIES for c in clients)


def test_tweet_ids_are_unique_across_all_users(large):
    ids = [t.tweet_id for t in _tweets(large)]
    assert len(ids) == len(set(ids)) == 360


def test_tweet_ids_are_snowflakes_that_sort_in_creation_order(large):
    tweets = _tweets(large)
    for tweet in tweets:
        assert tweet.tweet_id.isdigit()
        created_ms = int(tweet.created_at.timestamp() * 1000)
        assert (int(tweet.tweet_id) >> 22) + TWITTER_EPOCH_MS == created_ms
    by_id = sorted(tweets, key=lambda t: int(t.tweet_id))
    assert [t.created_at for t in by_id] == sorted(t.created_at for t in tweets)
    for user in large.users:
        assert [t.created_at for t in user.tweets] == sorted(t.created_at for t in user.tweets)
        assert [int(t.tweet_id) for t in user.tweets] == sorted(int(t.tweet_id) for t in user.tweets)


def test_tweet_text_fits_in_280_characters(large):
    for tweet in _tweets(large):
        assert 0 < len(tweet.text) <= 280, tweet.text


def test_tweet_entities_appear_in_the_text(large):
    for tweet in _tweets(large):
        for tag in tweet.hashtags:
            assert f"#{tag}" in tweet.text
        for name in tweet.mentions:
            assert f"@{name}" in tweet.text
        for url in tweet.urls:
            assert url in tweet.text and url.startswith("https://t.co/")
        assert tweet.retweet_count >= 0 and tweet.favorite_count >= 0


def test_every_pii_kind_is_planted(large):
    planted_kinds = {kind for t in _tweets(large) for kind, _ in t.planted_pii}
    assert planted_kinds == set(PII_KINDS)


def test_planted_pii_occurs_verbatim_in_its_tweet(large):
    planted = [(t, kind, value) for t in _tweets(large) for kind, value in t.planted_pii]
    assert planted
    for tweet, kind, value in planted:
        assert kind in PII_KINDS
        assert value and value in tweet.text, (kind, value, tweet.text)
    # One planted item per tweet at most.
    assert all(len(t.planted_pii) <= 1 for t in _tweets(large))


@pytest.mark.parametrize("seed", [5, 99, 2024])
def test_about_thirty_percent_of_tweets_carry_pii(seed):
    """The docstring says ~30% carry PII; over 360 tweets that is 108 +- 9 (1 sd), so 20%..40% is
    more than 3.5 standard deviations either side."""
    tweets = _tweets(generate_dataset(seed, users=6, clients=3, tweets_per_user=60, events=3, anchor=ANCHOR))
    share = sum(1 for t in tweets if t.planted_pii) / len(tweets)
    assert 0.20 <= share <= 0.40, share


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def test_planted_values_look_like_their_kind(large):
    """Redaction tests rely on the recorded kind matching what the value is."""
    for tweet in _tweets(large):
        for kind, value in tweet.planted_pii:
            if kind == "email":
                assert "@" in value or re.search(r"\bat\b|\[at\]|\(at\)", value), value
            elif kind == "phone":
                assert len(re.sub(r"\D", "", value)) >= 10, value
            elif kind == "card":
                digits = re.sub(r"[ -]", "", value)
                assert digits.isdigit() and 13 <= len(digits) <= 19 and _luhn_ok(digits), value
            elif kind == "ip":
                ipaddress.ip_address(value)
            elif kind == "iban":
                assert re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]+", value) and _iban_ok(value), value
            elif kind == "ssn":
                assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", value), value
            elif kind == "secret":
                assert re.match(r"sk-ant-api03-|AKIA|ghp_|xoxb-|password: ", value), value


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
_LONG_DIGITS = re.compile(r"\d[\d -]{11,}\d")


def test_tweets_without_planted_pii_contain_no_obvious_pii(large):
    """Ground truth must be complete: an unrecorded email or IP would make redaction tests lie."""
    clean = [t for t in _tweets(large) if not t.planted_pii]
    assert len(clean) >= 0.6 * len(_tweets(large))
    for tweet in clean:
        assert not _EMAIL.search(tweet.text), tweet.text
        assert not _IPV4.search(tweet.text), tweet.text
        assert not _LONG_DIGITS.search(tweet.text), tweet.text


# --- events ------------------------------------------------------------------------------------


def test_events_include_each_documented_defect_and_the_rest_are_well_formed(large):
    client_ids = {c.client_id for c in large.clients}
    defects = [e for e in large.events if e.defect is not None]
    assert {e.defect for e in defects} == DEFECT_KINDS
    assert len(defects) <= 0.05 * len(large.events)
    for event in large.events:
        if event.defect == "payload_not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(event.payload)
            continue
        payload = json.loads(event.payload)
        assert isinstance(payload, dict)
        assert re.fullmatch(r"[0-9a-f]{16}", payload["session"])
        assert payload["path"]
        if event.defect == "unknown_client":
            assert event.client_id not in client_ids
        elif event.defect == "missing_event_type":
            assert event.event_type == ""
        else:
            assert event.client_id in client_ids
            assert event.event_type in {"page_view", "click", "signup", "purchase", "form_submit"}
        if event.event_type == "purchase":
            assert 5 <= payload["amount"] <= 500 and payload["currency"] in {"USD", "EUR", "GBP"}
        if event.event_type in {"signup", "form_submit", "purchase"}:
            assert "@" in payload["user"]["email"]


def test_well_formed_events_only_reference_known_clients(small):
    client_ids = {c.client_id for c in small.clients}
    for event in small.events:
        if event.defect != "unknown_client":
            assert event.client_id in client_ids
            assert event.event_type or event.defect == "missing_event_type"


@pytest.mark.parametrize("count", [3, 4, 250])
def test_each_defect_kind_appears_once_there_is_room(count):
    ds = generate_dataset(6, users=1, clients=3, tweets_per_user=1, events=count, anchor=ANCHOR)
    assert {e.defect for e in ds.events if e.defect} == DEFECT_KINDS


@pytest.mark.parametrize("count", [1, 2])
def test_too_few_events_for_defects_are_all_well_formed(count):
    ds = generate_dataset(6, users=1, clients=3, tweets_per_user=1, events=count, anchor=ANCHOR)
    assert [e.defect for e in ds.events] == [None] * count
    assert all(isinstance(json.loads(e.payload), dict) for e in ds.events)


def test_events_are_sorted_in_time_with_valid_ip_addresses(large):
    times = [e.created_at for e in large.events]
    assert times == sorted(times)
    for event in large.events:
        ipaddress.ip_address(event.ip_address)
        assert event.url.startswith(f"https://{event.client_id}.example.com") or event.defect == "unknown_client"
        assert isinstance(event.consent_analytics, bool) and isinstance(event.consent_marketing, bool)


def test_event_urls_have_the_client_host_and_a_path(small):
    clients = {c.client_id for c in small.clients}
    for event in small.events:
        parts = urlsplit(event.url)
        assert parts.scheme == "https"
        assert parts.hostname is not None and parts.hostname.endswith(".example.com"), event.url
        assert parts.hostname.removesuffix(".example.com") in clients
        assert parts.path.startswith("/")
