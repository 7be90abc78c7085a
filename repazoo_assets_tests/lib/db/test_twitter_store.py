"""The tweet pipeline's database layer on SQLite and the real PostgreSQL: consent, encrypted
tokens, idempotent upserts, the monthly quota counter."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'app.db'}"
    eng = create_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


def connect(conn, vault, user_id="u1", tier="basic", **kw):
    args = dict(
        user_id=user_id, twitter_user_id="12345", access_token="access-SECRET-1",
        refresh_token="refresh-SECRET-1", expires_in=3600, tier=tier, handle="jane", now=NOW,
    )
    args.update(kw)
    store.connect_user(conn, vault, **args)


def tweet(i, text="hello"):
    return SimpleNamespace(
        id=1_000 + i, text=text, created_at=NOW - timedelta(hours=i), lang="en", public_metrics={"like_count": i},
        entities=None,
    )


def test_connect_stores_ciphertext_only_and_grants_consent(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(t.oauth_tokens)).one()
        state = store.consent(conn, "u1")
        token = store.load_token(conn, vault, "u1")
    assert "SECRET" not in raw.access_token_encrypted and "SECRET" not in raw.refresh_token_encrypted
    assert (token.access_token, token.refresh_token) == ("access-SECRET-1", "refresh-SECRET-1")
    assert token.expires_at == NOW + timedelta(hours=1)
    assert "SECRET" not in repr(token)
    assert state.granted and state.tier == "basic" and state.twitter_user_id == "12345"


def test_connecting_again_updates_in_place(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
        connect(conn, vault, tier="pro", access_token="access-2")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.subscriptions)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(t.oauth_tokens)).scalar() == 1
        assert store.consent(conn, "u1").tier == "pro"
        assert store.load_token(conn, vault, "u1").access_token == "access-2"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("revoke", "OAuth token revoked"),
        ("cancel", "no active subscription"),
        ("no_token", "no OAuth token"),
        ("delete", "unknown or deleted user"),
    ],
)
def test_consent_refused_with_a_reason(engine, vault, change, reason):
    with engine.begin() as conn:
        connect(conn, vault)
        if change == "revoke":
            assert store.revoke_token(conn, "u1") == 1
        elif change == "cancel":
            conn.execute(sa.update(t.subscriptions).values(status="cancelled", cancelled_at=NOW))
        elif change == "no_token":
            conn.execute(sa.delete(t.oauth_tokens))
        else:
            conn.execute(sa.update(t.users).values(deleted_at=NOW))
    with engine.connect() as conn:
        state = store.consent(conn, "u1")
        assert not state.granted and state.reason == reason
        with pytest.raises(store.ConsentNotGranted, match=f"consent not granted for user u1: {reason}"):
            store.require_consent(conn, "u1")


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"tier": "gold"}, "tier must be one of basic, pro"), ({"expires_in": 0}, "expires_in must be positive")],
)
def test_bad_input_is_refused_naming_it(engine, vault, kw, message):
    with engine.begin() as conn, pytest.raises(ValueError, match=message):
        connect(conn, vault, **kw)


def test_tweets_upsert_is_idempotent_and_since_id_follows(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
        assert store.upsert_tweets(conn, "u1", [tweet(i) for i in range(5)], source="api") == (5, 5)
        assert store.upsert_tweets(conn, "u1", [tweet(i) for i in range(3, 8)], source="api") == (5, 3)
    with engine.connect() as conn:
        assert store.count_tweets(conn, "u1") == 8
        assert store.last_tweet_id(conn, "u1") == 1_007


def test_pending_analysis_quota_counter_and_failures(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
        store.upsert_tweets(conn, "u1", [tweet(i) for i in range(4)], source="api")
        store.upsert_sanitized(conn, "u1", [(1_000 + i, f"clean {i}", {}) for i in range(4)], "v1")
    result = SimpleNamespace(tweet_id=1_000, sentiment="positive", score=0.5, risk_flags=("spam",), topics=("x",))
    failure = SimpleNamespace(tweet_id=1_001, reason="model output invalid: missing result")
    with engine.begin() as conn:
        assert [r.tweet_id for r in store.pending_analysis(conn, "u1", "m")] == [1_000, 1_001, 1_002, 1_003]
        store.upsert_analyses(conn, "u1", "m", [result], NOW)
        store.record_failures(conn, "u1", "m", [failure], NOW)
        store.record_failures(conn, "u1", "m", [failure], NOW)
        store.upsert_analyses(conn, "u1", "m", [result], NOW)  # a re-run: no duplicate
    with engine.connect() as conn:
        assert [r.tweet_id for r in store.pending_analysis(conn, "u1", "m")] == [1_001, 1_002, 1_003]
        assert [r.tweet_id for r in store.pending_analysis(conn, "u1", "other")] == [1_000, 1_001, 1_002, 1_003]
        assert store.analysed_this_month(conn, "u1", NOW) == 1
        assert store.analysed_this_month(conn, "u1", NOW + timedelta(days=15)) == 0  # next month
        attempts = conn.execute(sa.select(t.analysis_failures.c.attempts)).scalar_one()
        assert attempts == 2
        summary = store.summary(conn, "u1")
    assert summary["analysed"] == 1 and summary["by_sentiment"]["positive"] == 1
    assert summary["risk_flags_by_month"] == {"2026-11": {"spam": 1}}


def test_list_users_never_shows_tokens(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
        connect(conn, vault, user_id="u2", twitter_user_id="678")
        store.revoke_token(conn, "u2")
    with engine.connect() as conn:
        rows = store.list_users(conn)
    assert [r["user_id"] for r in rows] == ["u1", "u2"]
    assert rows[0]["consent"] == "granted"
    assert rows[1]["consent"] == "not granted (OAuth token revoked)"
    assert "SECRET" not in repr(rows)
