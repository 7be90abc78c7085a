"""Retention rules on the real PostgreSQL and moto's S3 server, with a fixed clock, at their
boundaries: day 89 kept and 91 deleted, grace 29/31 days, hard delete 59/61 days after the
cancellation; a dry run deletes nothing and reports what the real run then deletes."""

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from repazoo_assets.lib.compliance import retention
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage import S3ObjectStore
from repazoo_assets.lib.storage.s3 import s3_client

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def env(pg_url, s3_endpoint):
    engine = create_engine(pg_url)
    upgrade(engine)
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    s3 = S3ObjectStore(s3_client(endpoint_url=s3_endpoint))
    s3.ensure_bucket(bucket)
    yield SimpleNamespace(
        engine=engine, store=s3, buckets=Buckets(raw=bucket, processed=bucket, exports=bucket),
        vault=TokenVault.from_keys(Fernet.generate_key().decode()),
    )
    engine.dispose()


def user(env, user_id, *, tweets=(), fetched=NOW - DAY, created=NOW - 400 * DAY):
    """A connected user with tweets (ids) fetched at `fetched`."""
    with env.engine.begin() as conn:
        store.connect_user(
            conn, env.vault, user_id=user_id, twitter_user_id=str(zlib.crc32(user_id.encode())), access_token="AT",
            refresh_token=None, expires_in=3600, tier="basic", now=created,
        )
        conn.execute(sa.update(t.users).where(t.users.c.id == user_id).values(created_at=created, last_fetched_at=fetched))
        rows = [
            SimpleNamespace(id=i, text=f"t{i}", created_at=NOW - 200 * DAY, lang="en", public_metrics={}, entities=None)
            for i in tweets
        ]
        store.upsert_tweets(conn, user_id, rows, source="api")


def analyse(env, user_id, tweet_id, age_days: float):
    result = SimpleNamespace(tweet_id=tweet_id, sentiment="neutral", score=0.0, risk_flags=(), topics=())
    with env.engine.begin() as conn:
        store.upsert_sanitized(conn, user_id, [(tweet_id, "clean", {})], "v1")
        store.upsert_analyses(conn, user_id, "m", [result], NOW - timedelta(days=age_days))


def cancel(env, user_id, age_days: float):
    with env.engine.begin() as conn:
        conn.execute(
            sa.update(t.subscriptions).where(t.subscriptions.c.user_id == user_id)
            .values(status="cancelled", cancelled_at=NOW - timedelta(days=age_days))
        )


def run(env, now=NOW, **kw):
    return retention.apply_retention(env.engine, env.store, env.buckets, now=now, **kw)


def ids(env, table, column="id", where=None):
    query = sa.select(getattr(table.c, column)).order_by(getattr(table.c, column))
    if where is not None:
        query = query.where(where)
    with env.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_analyses_of_inactive_users_go_after_90_days(env):
    user(env, "inactive", tweets=[1, 2], fetched=NOW - 100 * DAY)
    user(env, "active", tweets=[3])
    analyse(env, "inactive", 1, 89)
    analyse(env, "inactive", 2, 91)
    analyse(env, "active", 3, 91)  # an active user keeps their history
    report = run(env)
    assert report.counts["analyses_of_inactive_users"] == 1
    assert ids(env, t.analyses, "tweet_id") == [1, 3]
    # A shorter window, from run config, reaches the day-89 analysis too.
    assert run(env, windows=retention.RetentionWindows(analyses_days=30)).counts["analyses_of_inactive_users"] == 1
    assert ids(env, t.analyses, "tweet_id") == [3]


def test_no_active_subscription_makes_a_user_inactive(env):
    user(env, "lapsed", tweets=[1])
    analyse(env, "lapsed", 1, 91)
    cancel(env, "lapsed", 5)
    assert run(env).counts["analyses_of_inactive_users"] == 1


def test_data_of_revoked_tokens_is_deleted_whatever_its_age(env):
    user(env, "revoked", tweets=[1, 2, 3])
    user(env, "kept", tweets=[4])
    analyse(env, "revoked", 1, 0)
    analyse(env, "revoked", 2, 0)
    with env.engine.begin() as conn:
        store.record_failures(conn, "revoked", "m", [SimpleNamespace(tweet_id=3, reason="x")], NOW)
        store.revoke_token(conn, "revoked", now=NOW)
    report = run(env, batch_size=1)  # one row per transaction: the batches loop to the end
    assert report.counts["revoked_token_data"] == 2 + 2 + 1 + 3  # analyses, sanitized, failure, tweets
    assert ids(env, t.tweets) == [4]
    assert ids(env, t.users) == ["kept", "revoked"]  # the users row goes with the erasure


def test_cancelled_users_are_soft_deleted_after_the_30_day_grace(env):
    user(env, "day29", tweets=[1])
    user(env, "day31", tweets=[2, 3])
    cancel(env, "day29", 29)
    cancel(env, "day31", 31)
    report = run(env)
    assert (report.counts["soft_deleted_users"], report.counts["soft_deleted_tweets"]) == (1, 2)
    assert ids(env, t.users, where=t.users.c.deleted_at.is_not(None)) == ["day31"]
    assert ids(env, t.tweets, where=t.tweets.c.deleted_at == NOW) == [2, 3]
    # Coming back restores the user and their tweets.
    with env.engine.begin() as conn:
        store.connect_user(
            conn, env.vault, user_id="day31", twitter_user_id="31", access_token="a", refresh_token=None,
            expires_in=60, tier="pro", now=NOW,
        )
    assert ids(env, t.tweets, where=t.tweets.c.deleted_at.is_not(None)) == []


def test_soft_deleted_users_are_hard_deleted_30_days_later(env):
    user(env, "gone", tweets=[1, 2])
    cancel(env, "gone", 0)
    cancelled = NOW
    assert run(env, now=cancelled + 30 * DAY + timedelta(hours=1)).counts["soft_deleted_users"] == 1
    day59 = run(env, now=cancelled + 59 * DAY)
    assert day59.counts["hard_deleted_users"] == 0 and ids(env, t.users) == ["gone"]
    day61 = run(env, now=cancelled + 61 * DAY)
    assert day61.counts["hard_deleted_users"] == 1 and day61.hard_deleted_user_ids == ["gone"]
    assert ids(env, t.users) == [] and ids(env, t.tweets) == [] and ids(env, t.subscriptions) == []
    with env.engine.connect() as conn:
        erased = conn.execute(sa.select(t.audit_log.c.subject_id).where(t.audit_log.c.action == "erase")).scalars().all()
    assert erased == ["gone"]


def test_single_soft_deleted_tweets_are_hard_deleted_after_30_days(env):
    user(env, "u", tweets=[1, 2, 3])
    with env.engine.begin() as conn:
        for tweet_id, age in ((1, 29), (2, 31)):
            conn.execute(sa.update(t.tweets).where(t.tweets.c.id == tweet_id).values(deleted_at=NOW - age * DAY))
    assert run(env).counts["hard_deleted_tweets"] == 1
    assert ids(env, t.tweets) == [1, 3]


def export(env, status, expires_in_days, key):
    env.store.put(env.buckets.exports, key, b"{}")
    with env.engine.begin() as conn:
        conn.execute(
            sa.insert(t.data_exports).values(
                user_id="u", status=status, object_key=key, download_url="https://example.invalid/s",
                expires_at=NOW + expires_in_days * DAY,
            )
        )


def test_expired_exports_lose_their_object_and_url(env):
    export(env, "ready", -1, "user-exports/u/1.json")
    export(env, "ready", 1, "user-exports/u/2.json")
    export(env, "pending", -1, "user-exports/u/3.json")
    assert run(env).counts["expired_exports"] == 1
    with env.engine.connect() as conn:
        rows = conn.execute(sa.select(t.data_exports).order_by(t.data_exports.c.id)).all()
    assert [(r.status, r.download_url is None) for r in rows] == [("expired", True), ("ready", False), ("pending", False)]
    assert not env.store.exists(env.buckets.exports, "user-exports/u/1.json")
    assert env.store.exists(env.buckets.exports, "user-exports/u/2.json")


def snapshot(env):
    with env.engine.connect() as conn:
        tables = {
            table.name: conn.execute(sa.select(table)).all()
            for table in (t.users, t.tweets, t.sanitized_tweets, t.analyses, t.data_exports, t.audit_log)
        }
    return tables, sorted(env.store.list_keys(env.buckets.exports))


def test_a_dry_run_deletes_nothing_and_reports_what_the_real_run_deletes(env):
    user(env, "inactive", tweets=[1, 2], fetched=NOW - 100 * DAY)
    analyse(env, "inactive", 1, 91)
    analyse(env, "inactive", 2, 95)
    user(env, "revoked", tweets=[3])
    analyse(env, "revoked", 3, 1)
    user(env, "lapsed", tweets=[4, 5])
    cancel(env, "lapsed", 31)
    user(env, "old", tweets=[6])
    cancel(env, "old", 90)
    with env.engine.begin() as conn:
        store.revoke_token(conn, "revoked", now=NOW)
        conn.execute(sa.update(t.users).where(t.users.c.id == "old").values(deleted_at=NOW - 40 * DAY))
        conn.execute(sa.update(t.tweets).where(t.tweets.c.id == 2).values(deleted_at=NOW - 45 * DAY))
    export(env, "ready", -2, "user-exports/lapsed/9.json")

    before = snapshot(env)
    dry = run(env, dry_run=True)
    assert snapshot(env) == before
    assert dry.counts == {
        "analyses_of_inactive_users": 2, "revoked_token_data": 3, "soft_deleted_tweets": 2, "soft_deleted_users": 1,
        "expired_exports": 1, "hard_deleted_users": 1, "hard_deleted_tweets": 1,
    }
    real = run(env, batch_size=1)
    assert real.counts == dry.counts and real.total == dry.total == 11
    with env.engine.connect() as conn:
        purges = conn.execute(sa.select(t.audit_log.c.details).where(t.audit_log.c.action == "retention_purge")).scalars().all()
    assert len(purges) == 1 and purges[0]["counts"] == dry.counts  # the dry run left no entry
    assert run(env, dry_run=True).total == 0  # nothing left to do


def test_windows_must_be_positive():
    with pytest.raises(ValueError, match="grace_days must be at least 1 day"):
        retention.RetentionWindows(grace_days=0)
