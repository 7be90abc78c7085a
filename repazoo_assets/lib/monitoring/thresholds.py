"""The platform's alert thresholds and how each is measured.

Every evaluation takes the time it evaluates at (`now`), so a run is reproducible and a test can
put a row exactly on a window's edge. A window is `(now - window, now]`: a row written exactly one
window ago has left it. Each outcome carries the alert window key: the start of the fixed period
(`alert_every`) that `now` falls in, so a condition that lasts raises one alert per period, not
one every five minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import upsert

WARN = "WARN"
ERROR = "ERROR"


@dataclass(frozen=True)
class UsageThreshold:
    """At most `limit` api_usage rows of `operation` in the last `window`."""

    check_name: str
    operation: str
    limit: int
    window: timedelta
    severity: str
    description: str
    alert_every: timedelta


RATE_LIMIT_VIOLATIONS = UsageThreshold(
    "rate_limit_violations", "rate_limited", 10, timedelta(hours=1), WARN,
    "Twitter answered 429 (or the shared limiter refused) more than 10 times in the last hour",
    timedelta(hours=1),
)
TOKEN_REFRESH_FAILURES = UsageThreshold(
    "token_refresh_failures", "token_refresh_failed", 3, timedelta(hours=24), ERROR,
    "more than 3 OAuth token refreshes failed in the last 24 hours: users stop being fetched",
    timedelta(hours=24),
)
QUOTA_EXCEEDED_ATTEMPTS = UsageThreshold(
    "quota_exceeded_attempts", "quota_exceeded", 5, timedelta(hours=12), WARN,
    "analyses were refused for exhausted monthly quota more than 5 times in the last 12 hours",
    timedelta(hours=12),
)
USAGE_THRESHOLDS = (RATE_LIMIT_VIOLATIONS, TOKEN_REFRESH_FAILURES, QUOTA_EXCEEDED_ATTEMPTS)

DB_QUERIES_CHECK = "database_queries"
DB_QUERIES_LIMIT = 1000
DB_QUERIES_WINDOW = timedelta(minutes=5)
DB_QUERIES_STATE = "pg_stat_database_xacts"

# A health probe that keeps failing alerts once an hour.
HEALTH_ALERT_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class CheckOutcome:
    """One evaluated check. `measured` is False when the check could not take its reading
    (then `passed` says whether that is a problem)."""

    check_name: str
    passed: bool
    severity: str
    description: str
    window_key: str
    value: float | None = None
    threshold: float | None = None
    window: str = ""
    measured: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return f"{self.check_name}:{self.window_key}"


def window_key(now: datetime, period: timedelta) -> str:
    """Start of the fixed UTC period of length `period` that `now` falls in, e.g. 2026-11-24T12:00Z."""
    seconds = int(period.total_seconds())
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return start.strftime("%Y-%m-%dT%H:%MZ")


def describe(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def count_usage(conn: Connection, operation: str, now: datetime, window: timedelta) -> int:
    u = t.api_usage
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(u)
        .where(u.c.operation == operation, u.c.created_at > now - window, u.c.created_at <= now)
    ).scalar_one()


def evaluate_usage(conn: Connection, threshold: UsageThreshold, now: datetime) -> CheckOutcome:
    count = count_usage(conn, threshold.operation, now, threshold.window)
    passed = count <= threshold.limit
    window = describe(threshold.window)
    return CheckOutcome(
        check_name=threshold.check_name,
        passed=passed,
        severity=threshold.severity,
        description=(
            f"{count} {threshold.operation} events in the last {window} "
            f"({'within' if passed else 'over'} the limit of {threshold.limit})"
        ),
        window_key=window_key(now, threshold.alert_every),
        value=float(count),
        threshold=float(threshold.limit),
        window=window,
    )


# --- database queries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class XactReading:
    """PostgreSQL's cumulative count of committed and rolled-back transactions of this database,
    when it was read, and when the statistics were last reset (a reset restarts the count)."""

    total: int
    read_at: datetime
    stats_reset: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "read_at": self.read_at.isoformat(), "stats_reset": self.stats_reset}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> XactReading:
        return cls(int(value["total"]), datetime.fromisoformat(value["read_at"]), value.get("stats_reset"))


def read_xacts(conn: Connection, now: datetime) -> XactReading:
    row = conn.execute(
        sa.text(
            "select xact_commit + xact_rollback as total, stats_reset::text as stats_reset "
            "from pg_stat_database where datname = current_database()"
        )
    ).one()
    return XactReading(int(row.total), now, row.stats_reset)


def db_queries_outcome(previous: XactReading | None, current: XactReading, now: datetime) -> CheckOutcome:
    """Transactions per 5 minutes between two readings, scaled to 5 minutes when the runs were
    further apart (a missed tick must not double the rate). No usable previous reading (first run,
    statistics reset, clock going backwards) passes as a baseline."""
    common = dict(
        check_name=DB_QUERIES_CHECK, severity=WARN, window_key=window_key(now, HEALTH_ALERT_EVERY),
        threshold=float(DB_QUERIES_LIMIT), window=describe(DB_QUERIES_WINDOW),
    )
    elapsed = (current.read_at - previous.read_at).total_seconds() if previous else 0.0
    if (
        previous is None
        or elapsed <= 0
        or current.total < previous.total
        or current.stats_reset != previous.stats_reset
    ):
        return CheckOutcome(
            passed=True, measured=False,
            description="first reading taken: the rate is measured from the next run",
            extra={"transactions_total": current.total}, **common,
        )
    per_window = (current.total - previous.total) * DB_QUERIES_WINDOW.total_seconds() / elapsed
    value = round(per_window, 1)
    passed = value <= DB_QUERIES_LIMIT
    return CheckOutcome(
        passed=passed,
        description=(
            f"{value:g} database transactions per 5 min over the last {elapsed:.0f} s "
            f"({'within' if passed else 'over'} the limit of {DB_QUERIES_LIMIT})"
        ),
        value=value,
        extra={"transactions_total": current.total, "elapsed_seconds": elapsed},
        **common,
    )


def evaluate_db_queries(engine: Engine, now: datetime) -> CheckOutcome:
    """Reads PostgreSQL's transaction counters, compares them with the reading kept from the last
    run (table `monitoring_state`) and keeps the new one. SQLite has no such statistics: the check
    reports "not measured" and passes."""
    if engine.dialect.name != "postgresql":
        return CheckOutcome(
            check_name=DB_QUERIES_CHECK, passed=True, severity=WARN, measured=False,
            description=f"not measured: {engine.dialect.name} keeps no query statistics",
            window_key=window_key(now, HEALTH_ALERT_EVERY), threshold=float(DB_QUERIES_LIMIT),
            window=describe(DB_QUERIES_WINDOW),
        )
    s = t.monitoring_state
    with engine.begin() as conn:
        current = read_xacts(conn, now)
        stored = conn.execute(sa.select(s.c.value).where(s.c.name == DB_QUERIES_STATE)).scalar_one_or_none()
        previous = XactReading.from_json(stored) if stored else None
        write_state(conn, DB_QUERIES_STATE, current.to_json(), now)
    return db_queries_outcome(previous, current, now)


def write_state(conn: Connection, name: str, value: dict[str, Any], now: datetime) -> None:
    upsert(conn, t.monitoring_state, [{"name": name, "value": value, "updated_at": now}], key=["name"])
