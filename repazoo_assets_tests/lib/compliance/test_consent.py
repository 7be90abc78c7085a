"""The consent record on the real PostgreSQL: every change is one row with its context, identical
requests add nothing, connecting records a grant, and `repazoo consent revoke` drives it."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from repazoo_assets.commands.consent import consent
from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def connect(conn, vault, user_id="u1", now=NOW, **kw):
    store.connect_user(
        conn, vault, user_id=user_id, twitter_user_id="4242", access_token="AT", refresh_token="RT", expires_in=3600,
        tier="basic", now=now, **kw,
    )


def log_rows(conn, user_id="u1"):
    return conn.execute(
        sa.select(t.consent_audit_log).where(t.consent_audit_log.c.user_id == user_id).order_by(t.consent_audit_log.c.id)
    ).all()


def test_connect_records_one_grant_and_a_reconnect_adds_nothing(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault, ip_address="198.51.100.7", user_agent="Mozilla/5.0 (X11)")
        connect(conn, vault, now=NOW + timedelta(hours=1))  # token renewed: consent unchanged
    with engine.connect() as conn:
        rows = log_rows(conn)
    assert [(r.action, r.source, r.ip_address, r.user_agent) for r in rows] == [
        ("grant", "oauth", "198.51.100.7", "Mozilla/5.0 (X11)")
    ]
    assert rows[0].created_at == NOW


def test_a_second_identical_revoke_adds_nothing_and_reports_it(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
    kwargs = dict(user_id="u1", reason="user asked for deletion", source="web", ip_address="203.0.113.9", user_agent="UA/1")
    with engine.begin() as conn:
        first = consent_log.revoke_consent(conn, now=NOW, **kwargs)
    with engine.begin() as conn:
        second = consent_log.revoke_consent(conn, now=NOW + timedelta(minutes=1), **kwargs)
    assert first.recorded and not second.recorded and second.event_id == first.event_id
    with engine.connect() as conn:
        rows = log_rows(conn)
        token = conn.execute(sa.select(t.oauth_tokens.c.revoked, t.oauth_tokens.c.revoked_at)).one()
        assert not store.consent(conn, "u1").granted
    assert [(r.action, r.reason, r.source, r.ip_address, r.user_agent) for r in rows] == [
        ("grant", None, "oauth", None, None),
        ("revoke", "user asked for deletion", "web", "203.0.113.9", "UA/1"),
    ]
    assert token.revoked and token.revoked_at == NOW  # the first revocation's time is kept


def test_reconnecting_after_a_revoke_records_a_new_grant(engine, vault):
    with engine.begin() as conn:
        connect(conn, vault)
        assert store.revoke_token(conn, "u1", now=NOW, reason="token refused") == 1
        assert store.revoke_token(conn, "u1", now=NOW) == 0  # already revoked: nothing more
        connect(conn, vault, now=NOW + timedelta(days=1))
    with engine.connect() as conn:
        events = consent_log.history(conn, "u1")
        assert store.consent(conn, "u1").granted
    assert [(e.action, e.source, e.reason) for e in events] == [
        ("grant", "oauth", None), ("revoke", "pipeline", "token refused"), ("grant", "oauth", None)
    ]


def test_bad_requests_are_refused(engine):
    with engine.begin() as conn:
        with pytest.raises(consent_log.ConsentError, match="action must be one of grant, revoke"):
            consent_log.record_consent(conn, user_id="u1", action="pause", source="web")
        with pytest.raises(consent_log.ConsentError, match="user_id must be non-empty"):
            consent_log.record_consent(conn, user_id="", action="grant", source="web")
        assert store.revoke_token(conn, "nobody") == 0
        assert log_rows(conn, "nobody") == []


@pytest.fixture
def cli_env(pg_url, monkeypatch, tmp_path):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", pg_url)
    engine = create_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_cli_consent_revoke_records_once_and_audits(cli_env, vault):
    with cli_env.begin() as conn:
        connect(conn, vault)
    args = ["revoke", "--user-id", "u1", "--reason", "user asked for deletion"]
    first = CliRunner().invoke(consent, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "consent of user u1 revoked; their data will be erased by the user_erasure_sensor"
    again = CliRunner().invoke(consent, args, catch_exceptions=False)
    assert again.exit_code == 0 and again.output.strip() == "consent of user u1 already revoked: nothing recorded"
    with cli_env.connect() as conn:
        assert [(r.action, r.source, r.reason) for r in log_rows(conn)] == [
            ("grant", "oauth", None), ("revoke", "cli", "user asked for deletion")
        ]
        audited = conn.execute(sa.select(t.audit_log.c.action, t.audit_log.c.details)).all()
    assert [(a.action, a.details) for a in audited] == [("consent_change", {"consent": "revoked", "source": "cli"})]

    status = CliRunner().invoke(consent, ["status", "--user-id", "u1"], catch_exceptions=False)
    assert status.exit_code == 0
    lines = status.output.splitlines()
    assert lines[0] == "user u1: not granted (OAuth token revoked)"
    assert "grant  oauth" in lines[1] and "revoke cli" in lines[2] and "user asked for deletion" in lines[2]


def test_cli_consent_revoke_of_an_unknown_user_is_one_error_line(cli_env):
    result = CliRunner().invoke(consent, ["revoke", "--user-id", "ghost", "--reason", "x"])
    assert result.exit_code == 2
    assert result.output.strip() == "repazoo: error: consent revoke: no user ghost"
