"""Consent changes and their record, `consent_audit_log`.

Every change of a user's consent is one row (action, reason, source, and the request's IP address
and user agent when the caller has them). A request that would not change the state — a second
`revoke` of revoked consent, a `grant` while consent stands — adds nothing and says so, so a
double click in the web app or a retried command leaves one record.

The CLI (`repazoo consent revoke`), the web app and the tweet pipeline all go through
`record_consent` (directly, or through `twitter_store.connect_user` / `revoke_token`), so the
erasure sensor can follow one log. Functions take a Connection and join the caller's transaction.

`consent_audit_log` has no foreign key to `users` and survives the user's erasure: it is the
evidence that consent was given and withdrawn (GDPR Art. 7(1), Art. 17(3)(b) and (e)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from repazoo_assets.lib.db import tables as t

GRANT = "grant"
REVOKE = "revoke"
ACTIONS = (GRANT, REVOKE)
# Where a change came from; free-form but short (the column is 32 characters).
SOURCES = ("web", "cli", "oauth", "pipeline", "support")
# Key class of the per-user advisory lock on PostgreSQL ("cons"), next to hashtext(user_id).
_LOCK_CLASS = 0x636F6E73


class ConsentError(ValueError):
    """A consent request that cannot be recorded (unknown action, empty user id, …)."""


@dataclass(frozen=True)
class ConsentEvent:
    id: int
    action: str
    source: str
    reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class ConsentChange:
    """The outcome of a request: `recorded` False means the state was already `action`."""

    user_id: str
    action: str
    recorded: bool
    event_id: int | None  # the new row, or the existing one that already said so


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _lock_user(conn: Connection, user_id: str) -> None:
    """Serialize consent changes of one user until the transaction ends, so two identical
    concurrent requests cannot both see "not yet" and both insert."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_CLASS, sa.func.hashtext(user_id))))
    elif conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        # SQLite has one writer: take the write lock before reading (as BEGIN IMMEDIATE does).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def latest(conn: Connection, user_id: str) -> ConsentEvent | None:
    """The user's most recent consent event, or None if there never was one."""
    log = t.consent_audit_log
    row = conn.execute(
        sa.select(log.c.id, log.c.action, log.c.source, log.c.reason, log.c.created_at)
        .where(log.c.user_id == user_id)
        .order_by(log.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return ConsentEvent(row.id, row.action, row.source, row.reason, _utc(row.created_at))


def history(conn: Connection, user_id: str) -> list[ConsentEvent]:
    """Every consent event of the user, oldest first (no IP address or user agent)."""
    log = t.consent_audit_log
    rows = conn.execute(
        sa.select(log.c.id, log.c.action, log.c.source, log.c.reason, log.c.created_at)
        .where(log.c.user_id == user_id)
        .order_by(log.c.id)
    ).all()
    return [ConsentEvent(r.id, r.action, r.source, r.reason, _utc(r.created_at)) for r in rows]


def record_consent(
    conn: Connection,
    *,
    user_id: str,
    action: str,
    source: str,
    reason: str | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ConsentChange:
    """Record `action` for the user unless their latest event already is `action`."""
    if action not in ACTIONS:
        raise ConsentError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if not user_id:
        raise ConsentError("user_id must be non-empty")
    if not source or len(source) > 32:
        raise ConsentError("source must be 1-32 characters")
    _lock_user(conn, user_id)
    previous = latest(conn, user_id)
    if previous is not None and previous.action == action:
        return ConsentChange(user_id, action, recorded=False, event_id=previous.id)
    values = {
        "user_id": user_id,
        "action": action,
        "reason": reason[:256] if reason else None,
        "source": source,
        "ip_address": ip_address[:64] if ip_address else None,
        "user_agent": user_agent[:512] if user_agent else None,
        "created_at": now or datetime.now(UTC),
    }
    event_id = conn.execute(
        sa.insert(t.consent_audit_log).values(**values).returning(t.consent_audit_log.c.id)
    ).scalar_one()
    return ConsentChange(user_id, action, recorded=True, event_id=event_id)


def revoke_consent(
    conn: Connection,
    *,
    user_id: str,
    reason: str | None,
    source: str,
    ip_address: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ConsentChange:
    """Withdraw the user's consent: their token is revoked (nothing more is fetched or analysed)
    and a `revoke` is recorded, which the erasure sensor turns into an erasure run.

    For the CLI and the web app. Idempotent: a second identical request records nothing and
    returns `recorded=False`."""
    from repazoo_assets.lib.db import twitter_store as store  # the store records consent through us

    now = now or datetime.now(UTC)
    change = record_consent(
        conn, user_id=user_id, action=REVOKE, source=source, reason=reason, ip_address=ip_address,
        user_agent=user_agent, now=now,
    )
    # Finds the revoke just recorded (or already there) and records nothing more.
    store.revoke_token(conn, user_id, now=now, source=source, reason=reason)
    return change


def user_exists(conn: Connection, user_id: str) -> bool:
    return conn.execute(sa.select(t.users.c.id).where(t.users.c.id == user_id)).first() is not None


def revocations_after(conn: Connection, after_id: int, limit: int = 500) -> list[tuple[int, str]]:
    """(event id, user id) of `revoke` events with id above `after_id`, in id order: what the
    erasure sensor reads from its cursor."""
    log = t.consent_audit_log
    rows = conn.execute(
        sa.select(log.c.id, log.c.user_id)
        .where(log.c.id > after_id, log.c.action == REVOKE)
        .order_by(log.c.id)
        .limit(limit)
    ).all()
    return [(row.id, row.user_id) for row in rows]
