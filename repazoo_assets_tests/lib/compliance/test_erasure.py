"""Erasure on the real PostgreSQL and moto's S3 server: everything of the user goes in one
transaction, the consent and audit records stay (ids and counts only), bystanders are untouched,
a second run finds nothing, and the scan finds whatever is left behind."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.compliance import erasure
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage import ObjectStoreError, S3ObjectStore
from repazoo_assets.lib.storage.s3 import s3_client

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TARGET = SimpleNamespace(user_id="usr-target", twitter_user_id="98765432", handle="Jane_Erased", email="jane.erased@example.org")
BYSTANDER = SimpleNamespace(user_id="usr-other", twitter_user_id="11223344", handle="bob_stays", email="bob@example.net")


@pytest.fixture
def objects(s3_endpoint):
    suffix = uuid.uuid4().hex[:8]
    buckets = Buckets(raw=f"raw-{suffix}", processed=f"processed-{suffix}", exports=f"exports-{suffix}")
    s3 = S3ObjectStore(s3_client(endpoint_url=s3_endpoint))
    for bucket in (buckets.raw, buckets.processed, buckets.exports):
        s3.ensure_bucket(bucket)
    return SimpleNamespace(store=s3, buckets=buckets)


def tweet(i, text):
    return SimpleNamespace(id=i, text=text, created_at=NOW - timedelta(days=i % 30), lang="en", public_metrics={}, entities=None)


def seed_user(conn, vault, who, first_tweet: int) -> None:
    """A connected user with tweets, sanitized copies, analyses, a failure, API usage and an export."""
    store.connect_user(
        conn, vault, user_id=who.user_id, twitter_user_id=who.twitter_user_id, access_token="AT-secret",
        refresh_token="RT-secret", expires_in=3600, tier="pro", handle=who.handle, now=NOW - timedelta(days=40),
    )
    conn.execute(sa.update(t.users).where(t.users.c.id == who.user_id).values(email=who.email, display_name="Jane"))
    ids = [first_tweet + i for i in range(4)]
    store.upsert_tweets(conn, who.user_id, [tweet(i, f"tweet {i} mail {who.email}") for i in ids], source="api")
    store.upsert_sanitized(conn, who.user_id, [(i, f"tweet {i} mail [EMAIL]", {"email": 1}) for i in ids], "v1")
    results = [SimpleNamespace(tweet_id=i, sentiment="neutral", score=0.1, risk_flags=(), topics=()) for i in ids[:3]]
    store.upsert_analyses(conn, who.user_id, "m", results, NOW)
    store.record_failures(conn, who.user_id, "m", [SimpleNamespace(tweet_id=ids[3], reason="invalid")], NOW)
    store.record_api_usage(conn, user_id=who.user_id, provider="twitter", operation="user_tweets", count=2)
    conn.execute(
        sa.insert(t.data_exports).values(
            user_id=who.user_id, status="ready", object_key=f"user-exports/{who.user_id}/7.json",
            download_url="https://example.invalid/signed", expires_at=NOW + timedelta(days=3),
        )
    )


def seed_objects(objects, who) -> None:
    s, b = objects.store, objects.buckets
    s.put(b.exports, f"user-exports/{who.user_id}/7.json", json.dumps({"handle": who.handle}).encode())
    s.put(b.processed, f"users/{who.user_id}/summary.json", b"{}")
    s.put(b.raw, f"users/{who.user_id}/tweets/2026-11.parquet", b"PAR1")


@pytest.fixture
def seeded(engine, objects):
    vault = TokenVault.from_keys(Fernet.generate_key().decode())
    with engine.begin() as conn:
        seed_user(conn, vault, TARGET, 1_000)
        seed_user(conn, vault, BYSTANDER, 2_000)
    seed_objects(objects, TARGET)
    seed_objects(objects, BYSTANDER)
    # Event files whose numeric ids contain the Twitter id must not look like the user's objects.
    objects.store.put(objects.buckets.raw, f"events/dt=2026-11-20/events-{TARGET.twitter_user_id}-98765500.parquet", b"x")
    return SimpleNamespace(engine=engine, vault=vault, **vars(objects))


def revoke(engine, user_id=TARGET.user_id):
    with engine.begin() as conn:
        return consent_log.revoke_consent(
            conn, user_id=user_id, reason="user asked for deletion", source="web", ip_address="203.0.113.9",
            user_agent="Mozilla/5.0", now=NOW,
        )


def rows_of(conn, user_id) -> dict[str, int]:
    return {
        table.name: conn.execute(
            sa.select(sa.func.count()).select_from(table).where(
                (table.c.id if table is t.users else table.c.user_id) == user_id
            )
        ).scalar_one()
        for table in erasure.ERASED_TABLES
    }


def identifiers(who):
    return erasure.UserIdentifiers(who.user_id, who.twitter_user_id, who.handle, who.email)


def test_erasure_removes_every_trace_and_keeps_only_ids_and_counts(seeded):
    revoke(seeded.engine)
    result = erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")

    assert result.counts == {
        "objects": 3, "analysis_failures": 1, "analyses": 3, "sanitized_tweets": 4, "tweets": 4, "api_usage": 2,
        "oauth_tokens": 1, "subscriptions": 1, "data_exports": 1, "users": 1,
    }
    assert "jane" not in repr(result).lower() and TARGET.twitter_user_id not in repr(result)
    remaining = erasure.find_remaining(seeded.engine, seeded.store, seeded.buckets, result.identifiers)
    assert remaining.clean, remaining
    with seeded.engine.connect() as conn:
        assert set(rows_of(conn, TARGET.user_id).values()) == {0}
        assert rows_of(conn, BYSTANDER.user_id) == {
            "analysis_failures": 1, "analyses": 3, "sanitized_tweets": 4, "tweets": 4, "api_usage": 2,
            "oauth_tokens": 1, "subscriptions": 1, "data_exports": 1, "users": 1,
        }
        kept = consent_log.history(conn, TARGET.user_id)
        erase_entry = conn.execute(sa.select(t.audit_log).where(t.audit_log.c.action == "erase")).one()
        audit_text = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(t.audit_log)).all()])
    assert [e.action for e in kept] == ["grant", "revoke"]  # the evidence of consent stays
    assert erase_entry.subject_id == TARGET.user_id and erase_entry.details["counts"]["tweets"] == 4
    for value in (TARGET.twitter_user_id, TARGET.handle, TARGET.email):
        assert value not in audit_text
    assert audit.verify(seeded.engine).ok
    assert erasure.find_remaining(seeded.engine, seeded.store, seeded.buckets, identifiers(BYSTANDER)).total > 0
    assert seeded.store.exists(seeded.buckets.exports, f"user-exports/{BYSTANDER.user_id}/7.json")


def test_a_second_erasure_finds_nothing_and_passes(seeded):
    revoke(seeded.engine)
    erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")
    again = erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")
    assert again.total == 0
    assert erasure.find_remaining(seeded.engine, seeded.store, seeded.buckets, identifiers(TARGET)).clean
    with seeded.engine.connect() as conn:
        outcomes = conn.execute(
            sa.select(t.audit_log.c.details).where(t.audit_log.c.action == "erase").order_by(t.audit_log.c.id)
        ).scalars().all()
    assert [o["outcome"] for o in outcomes] == ["erased", "nothing left to erase"]


def test_the_scan_finds_what_is_left_behind(seeded):
    revoke(seeded.engine)
    erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")
    ids = identifiers(TARGET)
    s, b = seeded.store, seeded.buckets
    s.put(b.processed, f"users/{TARGET.user_id}/late.json", b"{}")  # written after the erasure
    s.put(b.raw, f"legacy/{TARGET.twitter_user_id}.json", b"{}")  # a key naming the Twitter id
    found = erasure.find_remaining(seeded.engine, s, b, ids)
    assert not found.clean and found.objects == {b.processed: 1, b.raw: 1} and found.tables == {}
    # Without the whole-bucket listing only the user's prefixes are looked at.
    assert erasure.find_remaining(seeded.engine, s, b, ids, scan_all_keys=False).objects == {b.processed: 1}

    with seeded.engine.begin() as conn:
        conn.execute(sa.insert(t.data_exports).values(user_id=TARGET.user_id, status="pending"))
        conn.execute(
            sa.insert(t.alerts).values(check_name="x", severity="warning", message=TARGET.email.upper(), dedup_key="k1")
        )
        conn.execute(
            sa.insert(t.raw_batches).values(
                first_event_id=1, last_event_id=2, object_key=f"exports/{TARGET.user_id}/b.parquet", row_count=1,
                byte_size=1, sha256="0" * 64,
            )
        )
    found = erasure.find_remaining(seeded.engine, s, b, ids)
    assert found.tables == {"data_exports": 1, "alerts": 1, "raw_batches": 1}
    assert TARGET.email not in repr(found) and TARGET.user_id not in repr(found)


def test_erasure_is_refused_while_consent_stands(seeded):
    with pytest.raises(erasure.ErasureRefused, match="has not withdrawn consent"):
        erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")
    with seeded.engine.connect() as conn:
        assert rows_of(conn, TARGET.user_id)["tweets"] == 4
    assert seeded.store.exists(seeded.buckets.exports, f"user-exports/{TARGET.user_id}/7.json")


def test_a_failing_object_store_rolls_every_row_back(seeded):
    revoke(seeded.engine)
    broken = Buckets(raw=seeded.buckets.raw, processed=f"missing-{uuid.uuid4().hex[:8]}", exports=seeded.buckets.exports)
    with pytest.raises(ObjectStoreError):
        erasure.erase_user(seeded.engine, seeded.store, broken, TARGET.user_id, actor="test")
    with seeded.engine.connect() as conn:
        assert rows_of(conn, TARGET.user_id)["users"] == 1 and rows_of(conn, TARGET.user_id)["tweets"] == 4
        assert conn.execute(sa.select(sa.func.count()).where(t.audit_log.c.action == "erase")).scalar_one() == 0
    # The rerun, with the store healthy, finishes the job.
    erasure.erase_user(seeded.engine, seeded.store, seeded.buckets, TARGET.user_id, actor="test")
    assert erasure.find_remaining(seeded.engine, seeded.store, seeded.buckets, identifiers(TARGET)).clean


def test_pending_erasures_are_users_who_withdrew_consent(seeded):
    with seeded.engine.connect() as conn:
        assert erasure.pending_erasures(conn) == []
    revoke(seeded.engine)
    with seeded.engine.begin() as conn:
        assert erasure.pending_erasures(conn) == [TARGET.user_id]
        # Consent given again before the erasure ran: no longer pending.
        store.connect_user(
            conn, seeded.vault, user_id=TARGET.user_id, twitter_user_id=TARGET.twitter_user_id, access_token="a",
            refresh_token=None, expires_in=60, tier="basic", now=NOW,
        )
        assert erasure.pending_erasures(conn) == [] and not erasure.erasable(conn, TARGET.user_id)


def test_key_matching_is_by_path_segment():
    tokens = {"u1", "98765432"}
    assert erasure.key_names_user("user-exports/u1/3.json", tokens)
    assert erasure.key_names_user("legacy/98765432.json", tokens)
    assert erasure.key_names_user("dt=2026/user=u1/x.parquet", tokens)
    assert not erasure.key_names_user("events/events-98765432-98765500.parquet", tokens)
    assert not erasure.key_names_user("users/u10/x.json", tokens)


def test_a_handle_that_is_an_ordinary_word_is_not_a_remnant():
    # The handle stays out of key and free-column matching: `events`, `hours` or `web` are words
    # of the platform's own keys and columns, and a false remnant would fail every erasure run.
    ids = erasure.UserIdentifiers("u1", "98765432", handle="events", email="ev@example.org")
    tokens = ids.key_tokens()
    assert "events" not in tokens
    assert not erasure.key_names_user("events/dt=2026-11-22/hour=10/events-1-5.parquet", tokens)
    assert erasure.key_names_user("legacy/98765432.json", tokens)
    conditions = erasure._table_conditions(t.user_requests, ids)
    rendered = " ".join(str(c.compile(compile_kwargs={"literal_binds": True})) for c in conditions)
    assert "'events'" not in rendered and "'u1'" in rendered
    assert "'events'" in " ".join(
        str(c.compile(compile_kwargs={"literal_binds": True})) for c in erasure._table_conditions(t.users, ids)
    )
