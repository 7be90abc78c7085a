"""Migrations apply on SQLite and on the real PostgreSQL, are idempotent, and match tables.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from repazoo_assets.lib.db import create_engine, current_revision, head_revision, upgrade, upsert
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db.migrate import VERSION_TABLE


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = create_engine(url)
    yield eng
    eng.dispose()


def test_upgrade_creates_every_table_and_is_idempotent(engine):
    before, after = upgrade(engine)
    assert before is None
    assert after == head_revision()
    names = set(sa.inspect(engine).get_table_names())
    assert set(t.metadata.tables) <= names
    assert VERSION_TABLE in names
    # Dagster's own Alembic table name is never used by the app.
    assert "alembic_version" not in names

    again = upgrade(engine)
    assert again == (head_revision(), head_revision())


def test_migrations_match_the_table_definitions(engine):
    upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, t.metadata)
    assert diff == [], f"tables.py and the migrations differ: {diff}"


def test_downgrade_to_base_then_upgrade_again(engine):
    from alembic import command

    from repazoo_assets.lib.db.migrate import alembic_config

    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    assert not set(t.metadata.tables) & set(sa.inspect(engine).get_table_names())
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def _user(conn, user_id="u1", twitter_id="100"):
    upsert(conn, t.users, [{"id": user_id, "twitter_user_id": twitter_id, "handle": "h"}], key=["id"])


def test_upsert_on_natural_key_never_duplicates(engine):
    upgrade(engine)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    tweet = {"id": 1850000000000000001, "user_id": "u1", "text": "first", "tweeted_at": now}
    with engine.begin() as conn:
        _user(conn)
        upsert(conn, t.tweets, [tweet], key=["id"])
        upsert(conn, t.tweets, [{**tweet, "text": "edited"}], key=["id"])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.tweets.c.id, t.tweets.c.text)).all()
    assert rows == [(1850000000000000001, "edited")]


def test_upsert_with_empty_update_keeps_existing_row(engine):
    upgrade(engine)
    with engine.begin() as conn:
        _user(conn)
        upsert(conn, t.users, [{"id": "u1", "twitter_user_id": "100", "handle": "changed"}], key=["id"], update=[])
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.users.c.handle)).scalar_one() == "h"


def test_constraints_are_enforced(engine):
    upgrade(engine)
    with engine.begin() as conn:
        _user(conn)
    # Unknown user: foreign key.
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(sa.insert(t.subscriptions).values(user_id="nobody", tier="basic"))
    # Unknown tier: check constraint.
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(sa.insert(t.subscriptions).values(user_id="u1", tier="platinum"))
    # One analysis per tweet and model.
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.tweets).values(id=7, user_id="u1", text="x", tweeted_at=now))
        row = {"tweet_id": 7, "user_id": "u1", "model": "m", "sentiment_label": "neutral", "sentiment_score": 0.0}
        conn.execute(sa.insert(t.analyses).values(**row))
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(sa.insert(t.analyses).values(**row))


def test_deleting_a_user_cascades_to_their_data(engine):
    upgrade(engine)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        _user(conn)
        conn.execute(sa.insert(t.tweets).values(id=7, user_id="u1", text="x", tweeted_at=now))
        conn.execute(sa.insert(t.sanitized_tweets).values(tweet_id=7, user_id="u1", text="x", redactor_version="1"))
        conn.execute(sa.insert(t.consent_audit_log).values(user_id="u1", action="revoke", source="cli"))
        conn.execute(sa.delete(t.users).where(t.users.c.id == "u1"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.tweets)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sanitized_tweets)).scalar_one() == 0
        # The consent record outlives the user.
        assert conn.execute(sa.select(sa.func.count()).select_from(t.consent_audit_log)).scalar_one() == 1


def test_events_log_ids_are_generated_and_increasing(engine):
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.events_log), [{"client_id": "c", "event_type": "click"} for _ in range(3)])
    with engine.connect() as conn:
        ids = conn.execute(sa.select(t.events_log.c.id).order_by(t.events_log.c.id)).scalars().all()
    assert len(ids) == 3 and ids == sorted(set(ids))
