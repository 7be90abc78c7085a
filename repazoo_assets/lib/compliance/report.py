"""The daily compliance report: what the platform did about personal data on one UTC day.

`gather(engine, day)` reads the app database and returns a `ComplianceDay` of counts, durations
and kinds only; `report_render.py` turns it into Markdown with a chart. Each figure is of the
rows whose own timestamp falls in [day 00:00, next day 00:00) UTC:

- data exports: requests completed that day (`completed_at`) by status, and the latency
  `requested_at` → `completed_at` of those served (`ready`, or `expired` since); requests made
  that day and those still open when the report ran. Erasure deletes a user's export rows, so a
  report made again after a user's erasure no longer counts their exports.
- erasures: `erase` entries of the audit log (erasures on request and retention hard deletes),
  by outcome, with the rows per table and objects their details record.
- retention: `retention_purge` entries, rows per rule summed over the day's runs.
- PII: tweets whose sanitized copy was first written that day (`sanitized_tweets.created_at`;
  re-sanitizing with a newer redactor updates the row but keeps that date), those with a
  redaction, and the redacted items per kind from `pii_counts`; and, given by the caller from
  the Dagster instance, the evaluations of the `sanitized_tweets_pii_free` check.
- alerts: rows of `alerts` per check and severity (never their messages).
- consent: `consent_audit_log` rows per action and source (never user ids, IPs or user agents).

No personal data leaves this module: user ids, messages, reasons, IPs are never selected, and
every name taken from stored data (JSON detail keys, statuses, check names) is kept only when it
belongs to the known vocabulary, else counted as `other`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.compliance import erasure, retention
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.monitoring.alerts import SEVERITIES
from repazoo_assets.lib.privacy.pii import PII_KINDS, find_pii
from repazoo_assets.lib.security import audit

OTHER = "other"
SERVED_STATUSES = ("ready", "expired")  # an expired export was served, then its link lapsed
OPEN_STATUSES = ("pending", "running")
ERASURE_OUTCOMES = ("erased", "nothing left to erase")
ERASED_KEYS = tuple(table.name for table in erasure.ERASED_TABLES)
# Check names are identifiers chosen in code; anything else is not shown by name.
_CHECK_NAME = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_STREAM_ROWS = 5000


# --- figures ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFigures:
    completed_by_status: dict[str, int]  # completed that day, by status at report time
    requested: int  # requested that day
    still_open: int  # requested that day, pending or running at report time
    latencies_seconds: tuple[float, ...]  # requested → completed of those served, ascending

    @property
    def served(self) -> int:
        return sum(self.completed_by_status.get(s, 0) for s in SERVED_STATUSES)

    @property
    def failed(self) -> int:
        return self.completed_by_status.get("failed", 0)

    @property
    def completed(self) -> int:
        return sum(self.completed_by_status.values())

    @property
    def p50_seconds(self) -> float | None:
        return percentile(self.latencies_seconds, 50)

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.latencies_seconds, 95)

    @property
    def max_seconds(self) -> float | None:
        return self.latencies_seconds[-1] if self.latencies_seconds else None


@dataclass(frozen=True)
class ErasureFigures:
    entries: int
    by_outcome: dict[str, int]
    rows_by_table: dict[str, int]
    objects: int

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


@dataclass(frozen=True)
class RetentionFigures:
    runs: int
    by_rule: dict[str, int]  # every rule, zero when nothing went

    @property
    def deleted(self) -> int:
        return sum(self.by_rule.values())


@dataclass(frozen=True)
class PiiFigures:
    tweets_redacted: int  # sanitized copies first written that day
    tweets_with_pii: int  # of those, with at least one redacted item
    items_by_kind: dict[str, int]

    @property
    def items(self) -> int:
        return sum(self.items_by_kind.values())


@dataclass(frozen=True)
class CheckFigures:
    """Evaluations of one asset check that day."""

    passed: int
    failed: int

    @property
    def evaluations(self) -> int:
        return self.passed + self.failed


@dataclass(frozen=True)
class ComplianceDay:
    day: date
    generated_at: datetime
    exports: ExportFigures
    erasures: ErasureFigures
    retention: RetentionFigures
    pii: PiiFigures
    pii_check: CheckFigures | None  # None: the Dagster instance could not tell
    alerts: dict[tuple[str, str], int]  # (check_name, severity) -> alerts
    consent_by_action: dict[str, int]
    consent_by_source: dict[str, int]

    @property
    def alert_count(self) -> int:
        return sum(self.alerts.values())

    @property
    def consent_changes(self) -> int:
        return sum(self.consent_by_action.values())

    @property
    def events(self) -> int:
        """Everything counted once: exports completed, erase and retention entries, tweets
        redacted, check evaluations, alerts, consent changes."""
        return (
            self.exports.completed + self.erasures.entries + self.retention.runs + self.pii.tweets_redacted
            + (self.pii_check.evaluations if self.pii_check else 0) + self.alert_count + self.consent_changes
        )

    def figures(self) -> dict[str, int | float | None]:
        """The headline numbers, one plain value each (for plotting across days)."""
        return {
            "exports_served": self.exports.served,
            "exports_failed": self.exports.failed,
            "export_latency_p50_seconds": _round(self.exports.p50_seconds),
            "export_latency_p95_seconds": _round(self.exports.p95_seconds),
            "export_latency_max_seconds": _round(self.exports.max_seconds),
            "erasures": self.erasures.entries,
            "retention_deleted": self.retention.deleted,
            "tweets_redacted": self.pii.tweets_redacted,
            "pii_items_redacted": self.pii.items,
            "pii_check_passed": self.pii_check.passed if self.pii_check else None,
            "pii_check_failed": self.pii_check.failed if self.pii_check else None,
            "alerts": self.alert_count,
            "consent_changes": self.consent_changes,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- helpers ------------------------------------------------------------------------------------
def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of the UTC day."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def percentile(ascending: tuple[float, ...] | list[float], q: float) -> float | None:
    """The q-th percentile, interpolated between the closest ranks (as PostgreSQL's
    percentile_cont and numpy's default); None for no values."""
    if not ascending:
        return None
    rank = (len(ascending) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ascending[low] + (ascending[high] - ascending[low]) * (rank - low)


def _known(value: Any, vocabulary: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in vocabulary else OTHER


def _check_name(value: Any) -> str:
    if isinstance(value, str) and _CHECK_NAME.fullmatch(value) and not find_pii(value):
        return value
    return OTHER


def _count(value: Any) -> int:
    """A count from stored JSON: a non-negative integer, anything else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _add_counts(total: Counter, counts: Any, vocabulary: Iterable[str]) -> None:
    if isinstance(counts, Mapping):
        for key, value in counts.items():
            total[_known(key, vocabulary)] += _count(value)


def _in_day(column: sa.Column, day: date) -> sa.ColumnElement:
    start, end = day_bounds(day)
    return sa.and_(column >= start, column < end)


def _seconds(start: datetime, end: datetime) -> float:
    # Both from one row and one backend: both aware (PostgreSQL) or both naive UTC (SQLite).
    return (end - start).total_seconds()


# --- sections -----------------------------------------------------------------------------------
def export_figures(conn: Connection, day: date) -> ExportFigures:
    e = t.data_exports
    completed = conn.execute(
        sa.select(e.c.status, e.c.requested_at, e.c.completed_at).where(_in_day(e.c.completed_at, day))
    ).all()
    by_status: Counter[str] = Counter()
    latencies = []
    for row in completed:
        status = _known(row.status, t.EXPORT_STATUSES)
        by_status[status] += 1
        if status in SERVED_STATUSES and row.requested_at is not None:
            latencies.append(max(0.0, _seconds(row.requested_at, row.completed_at)))
    requested = conn.execute(
        sa.select(e.c.status, sa.func.count()).where(_in_day(e.c.requested_at, day)).group_by(e.c.status)
    ).all()
    return ExportFigures(
        completed_by_status=dict(sorted(by_status.items())),
        requested=sum(n for _, n in requested),
        still_open=sum(n for status, n in requested if status in OPEN_STATUSES),
        latencies_seconds=tuple(sorted(latencies)),
    )


def _audit_details(conn: Connection, action: str, day: date) -> list[Any]:
    log = t.audit_log
    return list(
        conn.execute(
            sa.select(log.c.details)
            .where(log.c.action == action, _in_day(log.c.created_at, day))
            .order_by(log.c.id)
        ).scalars()
    )


def erasure_figures(conn: Connection, day: date) -> ErasureFigures:
    entries = _audit_details(conn, audit.AuditAction.ERASE.value, day)
    outcomes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for details in entries:
        details = details if isinstance(details, Mapping) else {}
        outcomes[_known(details.get("outcome"), ERASURE_OUTCOMES)] += 1
        _add_counts(counts, details.get("counts"), (*ERASED_KEYS, "objects"))
    objects = counts.pop("objects", 0)
    return ErasureFigures(
        entries=len(entries),
        by_outcome=dict(sorted(outcomes.items())),
        rows_by_table={k: v for k, v in sorted(counts.items()) if v},
        objects=objects,
    )


def retention_figures(conn: Connection, day: date) -> RetentionFigures:
    entries = _audit_details(conn, audit.AuditAction.RETENTION_PURGE.value, day)
    by_rule: Counter[str] = Counter(dict.fromkeys(retention.RULES, 0))
    for details in entries:
        _add_counts(by_rule, details.get("counts") if isinstance(details, Mapping) else None, retention.RULES)
    ordered = {rule: by_rule[rule] for rule in retention.RULES}
    if by_rule[OTHER]:
        ordered[OTHER] = by_rule[OTHER]
    return RetentionFigures(runs=len(entries), by_rule=ordered)


def pii_figures(conn: Connection, day: date) -> PiiFigures:
    s = t.sanitized_tweets
    tweets = with_pii = 0
    kinds: Counter[str] = Counter()
    # Only the counts column, streamed: a busy day has many sanitized tweets.
    result = conn.execution_options(yield_per=_STREAM_ROWS).execute(
        sa.select(s.c.pii_counts).where(_in_day(s.c.created_at, day))
    )
    for counts in result.scalars():
        tweets += 1
        before = kinds.total()
        _add_counts(kinds, counts, PII_KINDS)
        with_pii += kinds.total() > before
    return PiiFigures(
        tweets_redacted=tweets,
        tweets_with_pii=with_pii,
        items_by_kind={k: v for k, v in sorted(kinds.items()) if v},
    )


def alert_figures(conn: Connection, day: date) -> dict[tuple[str, str], int]:
    a = t.alerts
    rows = conn.execute(
        sa.select(a.c.check_name, a.c.severity, sa.func.count())
        .where(_in_day(a.c.created_at, day))
        .group_by(a.c.check_name, a.c.severity)
    ).all()
    out: Counter[tuple[str, str]] = Counter()
    for check_name, severity, n in rows:
        out[(_check_name(check_name), _known(severity, SEVERITIES))] += n
    return dict(sorted(out.items()))


def consent_figures(conn: Connection, day: date) -> tuple[dict[str, int], dict[str, int]]:
    log = t.consent_audit_log
    rows = conn.execute(
        sa.select(log.c.action, log.c.source, sa.func.count())
        .where(_in_day(log.c.created_at, day))
        .group_by(log.c.action, log.c.source)
    ).all()
    actions: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for action, source, n in rows:
        actions[_known(action, consent_log.ACTIONS)] += n
        sources[_known(source, consent_log.SOURCES)] += n
    return dict(sorted(actions.items())), dict(sorted(sources.items()))


def check_figures(evaluations: Iterable[tuple[datetime, bool]], day: date) -> CheckFigures:
    """Count (evaluated_at, passed) pairs that fall in the UTC day."""
    start, end = day_bounds(day)
    passed = failed = 0
    for when, ok in evaluations:
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if start <= when < end:
            passed += bool(ok)
            failed += not ok
    return CheckFigures(passed=passed, failed=failed)


def gather(
    engine: Engine, day: date, *, pii_check: CheckFigures | None = None, now: datetime | None = None
) -> ComplianceDay:
    """Every section for the UTC `day`, read in one transaction (one snapshot on PostgreSQL, so
    the sections agree with each other even while the pipelines write)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        actions, sources = consent_figures(conn, day)
        return ComplianceDay(
            day=day,
            generated_at=now or datetime.now(UTC),
            exports=export_figures(conn, day),
            erasures=erasure_figures(conn, day),
            retention=retention_figures(conn, day),
            pii=pii_figures(conn, day),
            pii_check=pii_check,
            alerts=alert_figures(conn, day),
            consent_by_action=actions,
            consent_by_source=sources,
        )
