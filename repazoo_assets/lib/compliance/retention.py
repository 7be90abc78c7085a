"""Data retention: what is kept how long, applied by the daily `data_retention` asset.

Rules, in the order they run (each with a window in `RetentionWindows`):

1. `analyses_of_inactive_users` — analyses older than `analyses_days` (90) of inactive users.
   A user is inactive when they have no `active` subscription, or their tweets were last
   fetched (or, never fetched, they were created) more than `inactive_days` (90) ago.
2. `revoked_token_data` — tweets, sanitized tweets, analyses and analysis failures of users
   whose OAuth token is revoked: the safety net behind erasure (a revocation that bypassed the
   library, or an erasure run that failed), whatever their age.
3. `soft_deleted_tweets`, `soft_deleted_users` — users whose subscription was cancelled more
   than `grace_days` (30) ago and who have no active or past-due one get `deleted_at` set, and
   so do their tweets. Reconnecting (`connect_user`) restores both.
4. `expired_exports` — `data_exports` that are `ready` with `expires_at` before now: the object
   is deleted, then the row becomes `expired` and loses its download URL.
5. `hard_deleted_users`, `hard_deleted_tweets` — rows soft-deleted more than
   `hard_delete_days` (30) ago are deleted for good; a user through the full erasure
   (`erasure.erase_user`, objects and export records included, an `erase` audit entry each).

The rules do not overlap (rules 1, 3 and 5 leave out users with a revoked token, which rule 2
owns; tweets of users being hard-deleted are counted as the user, not as tweets), so a dry run,
which only counts, reports the counts a real run would delete. Large deletes go in bounded
batches, one transaction per batch, so a purge never holds long locks. Counts are of each rule's
own rows: rows that go by `ON DELETE CASCADE` with a tweet or a user are not counted again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.compliance import erasure
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage.base import ObjectStore

RULES = (
    "analyses_of_inactive_users",
    "revoked_token_data",
    "soft_deleted_tweets",
    "soft_deleted_users",
    "expired_exports",
    "hard_deleted_users",
    "hard_deleted_tweets",
)


@dataclass(frozen=True)
class RetentionWindows:
    analyses_days: int = 90
    inactive_days: int = 90
    grace_days: int = 30
    hard_delete_days: int = 30

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 day, got {value}")


@dataclass
class RetentionReport:
    now: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    # Internal ids of users hard-deleted (their partitions are removed by the caller).
    hard_deleted_user_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --- who --------------------------------------------------------------------------------------
def _revoked_users() -> sa.Select:
    return sa.select(t.oauth_tokens.c.user_id).where(t.oauth_tokens.c.revoked.is_(True)).correlate(None)


def _inactive_users(now: datetime, w: RetentionWindows) -> sa.Select:
    active = sa.select(t.subscriptions.c.user_id).where(t.subscriptions.c.status == "active")
    cutoff = now - timedelta(days=w.inactive_days)
    return sa.select(t.users.c.id).where(
        sa.or_(
            ~t.users.c.id.in_(active),
            sa.func.coalesce(t.users.c.last_fetched_at, t.users.c.created_at) < cutoff,
        )
    ).correlate(None)


def _users_past_grace(now: datetime, w: RetentionWindows) -> sa.Select:
    s = t.subscriptions
    live = sa.select(s.c.user_id).where(s.c.status.in_(("active", "past_due")))
    cancelled_long_ago = (
        sa.select(s.c.user_id)
        .where(s.c.status == "cancelled", s.c.cancelled_at.is_not(None))
        .group_by(s.c.user_id)
        .having(sa.func.max(s.c.cancelled_at) < now - timedelta(days=w.grace_days))
    )
    return sa.select(t.users.c.id).where(
        t.users.c.deleted_at.is_(None), t.users.c.id.in_(cancelled_long_ago), ~t.users.c.id.in_(live)
    ).correlate(None)


def _users_past_hard_delete(now: datetime, w: RetentionWindows) -> sa.Select:
    return (
        sa.select(t.users.c.id).where(t.users.c.deleted_at < now - timedelta(days=w.hard_delete_days)).correlate(None)
    )


# --- batches ----------------------------------------------------------------------------------
def _count(engine: Engine, table: sa.Table, where: sa.ColumnElement) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()


def _batches(engine: Engine, key: sa.Column, where: sa.ColumnElement, batch_size: int, apply) -> int:
    """Apply `apply(conn, keys)` to the rows matching `where`, `batch_size` keys per transaction,
    until none match. Returns the rows `apply` reports."""
    done = 0
    while True:
        with engine.begin() as conn:
            keys = list(conn.execute(sa.select(key).where(where).distinct().order_by(key).limit(batch_size)).scalars())
            if not keys:
                return done
            done += apply(conn, keys)


def _delete(engine: Engine, table: sa.Table, key: sa.Column, where, *, dry_run: bool, batch_size: int) -> int:
    if dry_run:
        return _count(engine, table, where)
    return _batches(
        engine, key, where, batch_size,
        lambda conn, keys: conn.execute(sa.delete(table).where(key.in_(keys), where)).rowcount,
    )


def _soft_delete(engine: Engine, table: sa.Table, where, now: datetime, *, dry_run: bool, batch_size: int) -> int:
    if dry_run:
        return _count(engine, table, where)
    key = table.c.id
    return _batches(
        engine, key, where, batch_size,
        lambda conn, keys: conn.execute(sa.update(table).where(key.in_(keys), where).values(deleted_at=now)).rowcount,
    )


# --- the rules --------------------------------------------------------------------------------
def _analyses_of_inactive_users(engine, now, w, *, dry_run, batch_size) -> int:
    a = t.analyses
    where = sa.and_(
        a.c.analysed_at < now - timedelta(days=w.analyses_days),
        a.c.user_id.in_(_inactive_users(now, w)),
        ~a.c.user_id.in_(_revoked_users()),
    )
    return _delete(engine, a, a.c.id, where, dry_run=dry_run, batch_size=batch_size)


def _revoked_token_data(engine, *, dry_run, batch_size) -> int:
    total = 0
    for table, key in (
        (t.analysis_failures, t.analysis_failures.c.tweet_id),
        (t.analyses, t.analyses.c.id),
        (t.sanitized_tweets, t.sanitized_tweets.c.tweet_id),
        (t.tweets, t.tweets.c.id),
    ):
        where = table.c.user_id.in_(_revoked_users())
        total += _delete(engine, table, key, where, dry_run=dry_run, batch_size=batch_size)
    return total


def _soft_deletes(engine, now, w, *, dry_run, batch_size) -> tuple[int, int]:
    past_grace = _users_past_grace(now, w)
    # Tweets first: the users' predicate (deleted_at is null) changes once they are marked.
    tweets_where = sa.and_(
        t.tweets.c.deleted_at.is_(None), t.tweets.c.user_id.in_(past_grace), ~t.tweets.c.user_id.in_(_revoked_users())
    )
    tweets = _soft_delete(engine, t.tweets, tweets_where, now, dry_run=dry_run, batch_size=batch_size)
    users = _soft_delete(engine, t.users, t.users.c.id.in_(past_grace), now, dry_run=dry_run, batch_size=batch_size)
    return tweets, users


def _expired_exports(engine, store: ObjectStore, buckets: Buckets, now, *, dry_run, batch_size) -> int:
    e = t.data_exports
    where = sa.and_(e.c.status == "ready", e.c.expires_at < now)
    if dry_run:
        return _count(engine, e, where)

    def expire(conn, ids) -> int:
        keys = conn.execute(sa.select(e.c.object_key).where(e.c.id.in_(ids), e.c.object_key.is_not(None))).scalars()
        for key in keys:  # before the rows change: a failure leaves them `ready` for the next run
            store.delete(buckets.exports, key)
        return conn.execute(
            sa.update(e).where(e.c.id.in_(ids), where).values(status="expired", download_url=None)
        ).rowcount

    return _batches(engine, e.c.id, where, batch_size, expire)


def _hard_deletes(engine, store, buckets, now, w, *, dry_run, batch_size, actor) -> tuple[list[str], int]:
    past = _users_past_hard_delete(now, w)
    tweets_where = sa.and_(
        t.tweets.c.deleted_at < now - timedelta(days=w.hard_delete_days),
        ~t.tweets.c.user_id.in_(past),
        ~t.tweets.c.user_id.in_(_revoked_users()),
    )
    if dry_run:
        with engine.connect() as conn:
            users = list(conn.execute(past.order_by(t.users.c.id)).scalars())
        return users, _count(engine, t.tweets, tweets_where)
    users: list[str] = []
    while True:
        with engine.connect() as conn:
            batch = list(conn.execute(past.order_by(t.users.c.id).limit(batch_size)).scalars())
        if not batch:
            break
        for user_id in batch:  # one transaction per user, objects and export records included
            erasure.erase_user(engine, store, buckets, user_id, actor=actor, check_consent=False)
            users.append(user_id)
    tweets = _delete(engine, t.tweets, t.tweets.c.id, tweets_where, dry_run=False, batch_size=batch_size)
    return users, tweets


def apply_retention(
    engine: Engine,
    store: ObjectStore,
    buckets: Buckets,
    *,
    now: datetime,
    windows: RetentionWindows = RetentionWindows(),
    dry_run: bool = False,
    batch_size: int = 1000,
    actor: str = "retention",
) -> RetentionReport:
    """Apply every rule at `now` (or, with `dry_run`, count what they would delete). Records one
    `retention_purge` audit entry with the counts after a real run."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RetentionReport(now=now, dry_run=dry_run)
    c = report.counts
    opts = {"dry_run": dry_run, "batch_size": batch_size}
    c["analyses_of_inactive_users"] = _analyses_of_inactive_users(engine, now, windows, **opts)
    c["revoked_token_data"] = _revoked_token_data(engine, **opts)
    c["soft_deleted_tweets"], c["soft_deleted_users"] = _soft_deletes(engine, now, windows, **opts)
    c["expired_exports"] = _expired_exports(engine, store, buckets, now, **opts)
    report.hard_deleted_user_ids, c["hard_deleted_tweets"] = _hard_deletes(
        engine, store, buckets, now, windows, actor=actor, **opts
    )
    c["hard_deleted_users"] = len(report.hard_deleted_user_ids)
    if not dry_run:
        audit.append(
            engine, actor=actor, action=audit.AuditAction.RETENTION_PURGE, subject_type="retention",
            details={"counts": dict(c), "windows": asdict(windows), "as_of": now.isoformat()},
        )
    return report
