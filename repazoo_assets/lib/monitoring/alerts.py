"""Alerts: one row per check and window in `alerts`, then the log, Slack and Sentry.

`raise_alert` is the only writer of monitoring alerts: the row's `dedup_key` is unique, so the
same condition seen by every five-minute run of a window is one alert, and it tells the caller
whether the alert is new; only a new alert is notified. Messages are redacted with the privacy
library before they are stored or sent: callers should not put personal data in them, and if one
does by mistake it goes no further than this module.

`record_and_notify` is the whole path for any code that alerts (monitoring checks, the run-failure
sensor, event cleanup, deliveries). When the database cannot record the alert, the alert is still
notified (marked as not recorded), so a database outage is not silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.monitoring.sentry import SentryReporter, reporter_from_env
from repazoo_assets.lib.monitoring.slack import (
    DISABLED,
    POST_TIMEOUT,
    RESET_TIMEOUT,
    PostResult,
    SlackNotifier,
    redis_url_for_breaker,
    shared_breaker,
)
from repazoo_assets.lib.privacy.pii import redact

SEVERITIES = ("warn", "error", "critical")
DEDUP_KEY_MAX = 128


@dataclass(frozen=True)
class Alert:
    check_name: str
    severity: str
    message: str
    window_key: str
    value: float | None = None
    threshold: float | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.check_name}:{self.window_key}"

    def text(self) -> str:
        figures = []
        if self.value is not None:
            figures.append(f"value {self.value:g}")
        if self.threshold is not None:
            figures.append(f"threshold {self.threshold:g}")
        figures.append(f"window {self.window_key}")
        return f"[{self.severity.upper()}] {self.check_name}: {redact(self.message)} ({', '.join(figures)})"


def _insert(conn: Connection):
    return postgresql.insert(t.alerts) if conn.dialect.name == "postgresql" else sqlite.insert(t.alerts)


def raise_alert(
    conn: Connection,
    check_name: str,
    severity: str,
    message: str,
    value: float | None = None,
    threshold: float | None = None,
    window_key: str = "",
    *,
    now: datetime | None = None,
) -> bool:
    """Record the alert unless this check already alerted in this window; True if it is new."""
    severity = severity.lower()
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    alert = Alert(check_name, severity, message, window_key, value, threshold)
    if not window_key or len(alert.dedup_key) > DEDUP_KEY_MAX:
        raise ValueError(f"window_key must be non-empty and the dedup key at most {DEDUP_KEY_MAX} characters")
    row = {
        "check_name": check_name,
        "severity": severity,
        "message": redact(message),
        "value": value,
        "threshold": threshold,
        "dedup_key": alert.dedup_key,
    }
    if now is not None:
        row["created_at"] = now
    stmt = (
        _insert(conn).values(row)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(t.alerts.c.id)
    )
    return conn.execute(stmt).first() is not None


def mark_notified(conn: Connection, dedup_key: str, now: datetime) -> None:
    conn.execute(sa.update(t.alerts).where(t.alerts.c.dedup_key == dedup_key).values(notified_at=now))


@dataclass(frozen=True)
class AlertResult:
    new: bool
    recorded: bool
    slack: PostResult


class AlertNotifier:
    """Where a new alert goes besides the table: the log always, Slack and Sentry when set."""

    def __init__(
        self,
        slack: SlackNotifier | None = None,
        sentry: SentryReporter | None = None,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.slack = slack
        self.sentry = sentry
        self.log = logger or logging.getLogger("repazoo.alerts")

    def notify(self, alert: Alert, *, recorded: bool = True) -> PostResult:
        text = alert.text() if recorded else f"{alert.text()} [not recorded: database unavailable]"
        self.log.warning(f"ALERT {text}")
        result = self.slack.post(text) if self.slack else PostResult(DISABLED)
        if result.status not in ("sent", DISABLED):
            self.log.warning(f"alert {alert.check_name}: Slack {result.status} ({result.detail})")
        if self.sentry is not None:
            self.sentry.capture_alert(
                alert.check_name, alert.severity, redact(alert.message), value=alert.value,
                threshold=alert.threshold, window_key=alert.window_key,
            )
        return result


def record_and_notify(
    engine: Engine, notifier: AlertNotifier, alert: Alert, *, now: datetime | None = None
) -> AlertResult:
    """Record the alert and, if it is new, notify it. Never raises for a notification problem;
    a database that cannot record it still gets it notified."""
    now = now or datetime.now(UTC)
    try:
        with engine.begin() as conn:
            new = raise_alert(
                conn, alert.check_name, alert.severity, alert.message, alert.value, alert.threshold,
                alert.window_key, now=now,
            )
    except sa.exc.SQLAlchemyError as exc:
        notifier.log.warning(f"alert {alert.check_name}: not recorded ({type(exc).__name__})")
        return AlertResult(new=True, recorded=False, slack=notifier.notify(alert, recorded=False))
    if not new:
        return AlertResult(new=False, recorded=True, slack=PostResult("deduplicated"))
    result = notifier.notify(alert)
    if result.status == "sent":
        try:
            with engine.begin() as conn:
                mark_notified(conn, alert.dedup_key, now)
        except sa.exc.SQLAlchemyError:
            pass  # the alert is recorded and sent; only the timestamp is missing
    return AlertResult(new=True, recorded=True, slack=result)


def resend_unnotified(
    engine: Engine, notifier: AlertNotifier, *, now: datetime | None = None,
    within: timedelta = timedelta(hours=24), limit: int = 20,
) -> int:
    """Post again the alerts of the last `within` that Slack never got (it was down, or the
    breaker open, when they were raised): deduplication must not also mean silence. Stops at the
    first post that does not go through. Returns how many were sent."""
    if notifier.slack is None or not notifier.slack.enabled:
        return 0
    now = now or datetime.now(UTC)
    a = t.alerts
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(a.c.check_name, a.c.severity, a.c.message, a.c.value, a.c.threshold, a.c.dedup_key)
                .where(a.c.notified_at.is_(None), a.c.created_at >= now - within)
                .order_by(a.c.id)
                .limit(limit)
            ).all()
    except sa.exc.SQLAlchemyError:
        return 0
    sent = 0
    for row in rows:
        window = row.dedup_key.removeprefix(f"{row.check_name}:")
        alert = Alert(row.check_name, row.severity, row.message, window, row.value, row.threshold)
        if notifier.slack.post(f"{alert.text()} [sent late]").status != "sent":
            break
        with engine.begin() as conn:
            mark_notified(conn, row.dedup_key, now)
        sent += 1
    return sent


def build_notifier(
    *,
    webhook_url: str | None,
    rate_limit_storage_uri: str | None = None,
    key_prefix: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    post_timeout: float = POST_TIMEOUT,
    reset_timeout: float = RESET_TIMEOUT,
    sentry: SentryReporter | None | bool = True,
) -> AlertNotifier:
    """The notifier of the platform's settings: Slack when a webhook is set, behind the breaker
    whose state is shared through the rate-limit Redis (under `key_prefix`) when there is one;
    Sentry when SENTRY_DSN is set (`sentry=True`), or the reporter given."""
    breaker = shared_breaker(
        redis_url=redis_url_for_breaker(rate_limit_storage_uri),
        namespace=f"{key_prefix or 'repazoo'}:slack-webhook",
        reset_timeout=reset_timeout,
    )
    reporter = reporter_from_env() if sentry is True else (sentry or None)
    return AlertNotifier(SlackNotifier(webhook_url, breaker, timeout=post_timeout), reporter, logger)
