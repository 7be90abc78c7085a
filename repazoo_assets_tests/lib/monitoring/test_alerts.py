"""Alert rows are deduplicated per check and window; new alerts go to the log and Slack."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import create_engine
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.monitoring.alerts import (
    resend_unnotified,
    Alert,
    AlertNotifier,
    build_notifier,
    raise_alert,
    record_and_notify,
)
from repazoo_assets.lib.monitoring.slack import SlackNotifier, make_breaker
from repazoo_assets.lib.monitoring.thresholds import window_key
from repazoo_assets_tests.conftest import free_port
from repazoo_assets_tests.lib.monitoring.servers import RecordingServer

NOW = datetime(2026, 11, 24, 12, 7, tzinfo=UTC)


@pytest.fixture
def webhook():
    with RecordingServer() as server:
        yield server


def alerts(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.alerts).order_by(t.alerts.c.id)).all()


def test_raise_alert_once_per_check_and_window(engine):
    hour = window_key(NOW, timedelta(hours=1))
    with engine.begin() as conn:
        assert raise_alert(conn, "rate_limit_violations", "WARN", "11 events", 11, 10, hour) is True
        assert raise_alert(conn, "rate_limit_violations", "WARN", "12 events", 12, 10, hour) is False
        assert raise_alert(conn, "quota_exceeded_attempts", "WARN", "6 events", 6, 5, hour) is True
        next_hour = window_key(NOW + timedelta(hours=1), timedelta(hours=1))
        assert raise_alert(conn, "rate_limit_violations", "WARN", "13 events", 13, 10, next_hour) is True
    rows = alerts(engine)
    assert [(r.check_name, r.dedup_key, r.value) for r in rows] == [
        ("rate_limit_violations", "rate_limit_violations:2026-11-24T12:00Z", 11.0),
        ("quota_exceeded_attempts", "quota_exceeded_attempts:2026-11-24T12:00Z", 6.0),
        ("rate_limit_violations", "rate_limit_violations:2026-11-24T13:00Z", 13.0),
    ]
    assert rows[0].severity == "warn" and rows[0].threshold == 10.0


def test_raise_alert_redacts_personal_data_from_the_message(engine):
    with engine.begin() as conn:
        raise_alert(conn, "client_delivery", "error", "bucket owner jane.doe@gmail.com refused", window_key="w1")
    assert alerts(engine)[0].message == "bucket owner [EMAIL] refused"


def test_raise_alert_refuses_unknown_severities_and_empty_windows(engine):
    with engine.begin() as conn, pytest.raises(ValueError, match="severity"):
        raise_alert(conn, "x", "fatal", "m", window_key="w")
    with engine.begin() as conn, pytest.raises(ValueError, match="window_key"):
        raise_alert(conn, "x", "warn", "m")


def test_a_new_alert_is_posted_once_and_marked_notified(engine, webhook, caplog):
    notifier = AlertNotifier(SlackNotifier(webhook.url, make_breaker()))
    alert = Alert("token_refresh_failures", "error", "4 refreshes failed", "2026-11-24T00:00Z", 4, 3)
    with caplog.at_level(logging.WARNING, logger="repazoo.alerts"):
        first = record_and_notify(engine, notifier, alert, now=NOW)
        second = record_and_notify(engine, notifier, alert, now=NOW + timedelta(minutes=5))
    assert first.new and first.slack.status == "sent"
    assert not second.new and second.slack.status == "deduplicated"
    assert webhook.texts() == [
        "[ERROR] token_refresh_failures: 4 refreshes failed (value 4, threshold 3, window 2026-11-24T00:00Z)"
    ]
    assert alerts(engine)[0].notified_at == NOW
    assert sum("ALERT [ERROR] token_refresh_failures" in r.getMessage() for r in caplog.records) == 1


def test_slack_down_still_records_the_alert_and_leaves_it_unnotified(engine, webhook):
    webhook.status = 503
    notifier = AlertNotifier(SlackNotifier(webhook.url, make_breaker()))
    result = record_and_notify(engine, notifier, Alert("object_store_health", "error", "down", "w"), now=NOW)
    assert result.new and result.slack.status == "failed"
    assert len(alerts(engine)) == 1 and alerts(engine)[0].notified_at is None


def test_an_alert_slack_missed_is_sent_late_once_slack_is_back(engine, webhook):
    webhook.status = 503
    notifier = AlertNotifier(SlackNotifier(webhook.url, make_breaker()))
    record_and_notify(engine, notifier, Alert("object_store_health", "error", "down", "w"), now=NOW)
    assert resend_unnotified(engine, notifier, now=NOW) == 0  # still down: nothing marked
    assert alerts(engine)[0].notified_at is None

    webhook.status = 200
    assert resend_unnotified(engine, notifier, now=NOW + timedelta(minutes=5)) == 1
    assert alerts(engine)[0].notified_at is not None
    assert webhook.texts()[-1].endswith("[sent late]") and "object_store_health" in webhook.texts()[-1]
    assert resend_unnotified(engine, notifier, now=NOW + timedelta(minutes=10)) == 0  # once only


def test_locally_without_a_webhook_the_alert_goes_to_the_table_and_the_log(engine, caplog):
    notifier = build_notifier(webhook_url=None, rate_limit_storage_uri="memory://", sentry=None)
    with caplog.at_level(logging.WARNING, logger="repazoo.alerts"):
        result = record_and_notify(engine, notifier, Alert("database_queries", "warn", "1200 per 5 min", "w"), now=NOW)
    assert result.new and result.slack.status == "disabled"
    assert len(alerts(engine)) == 1
    assert any("ALERT [WARN] database_queries" in r.getMessage() for r in caplog.records)


def test_an_alert_the_database_cannot_record_is_still_notified(webhook):
    down = create_engine(f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test")
    notifier = AlertNotifier(SlackNotifier(webhook.url, make_breaker()))
    result = record_and_notify(down, notifier, Alert("database_health", "error", "no answer", "w"), now=NOW)
    assert result.new and not result.recorded and result.slack.status == "sent"
    assert "[not recorded: database unavailable]" in webhook.texts()[0]
    down.dispose()
