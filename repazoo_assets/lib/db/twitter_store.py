"""The tweet pipeline's reads and writes on the app database: users and their consent, OAuth
tokens (ciphertext only), tweets, sanitized tweets, analyses, failures and API usage.

Every write is idempotent (upserts on natural keys), so re-running a partition never duplicates
a row. Functions take a Connection and join the caller's transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db.upsert import upsert
from repazoo_assets.lib.security.vault import TokenVault

TIERS = t.TIERS


class ConsentNotGranted(RuntimeError):
    """The user has not (or no longer) consented: nothing may be fetched or analysed."""


@dataclass(frozen=True)
class Consent:
    user_id: str
    granted: bool
    reason: str | None  # why not, in words safe for logs (no personal data)
    tier: str | None
    twitter_user_id: str | None


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:  # never the tokens
        return f"StoredToken(expires_at={self.expires_at!r})"

    def expired(self, now: datetime, margin: timedelta = timedelta(seconds=60)) -> bool:
        return self.expires_at is not None and self.expires_at - margin <= now


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- users, subscriptions, tokens ------------------------------------------------------------
def connect_user(
    conn: Connection,
    vault: TokenVault,
    *,
    user_id: str,
    twitter_user_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_in: int,
    tier: str,
    handle: str | None = None,
    now: datetime | None = None,
    source: str = "oauth",
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> None:
    """Store (or update) a user, an active subscription of `tier` and their encrypted tokens,
    and record the consent `grant` in consent_audit_log (once: a reconnect while consent stands
    records nothing). A returning user's soft-deleted tweets are restored with the user."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if not user_id or not twitter_user_id.isdigit():
        raise ValueError("user_id must be non-empty and twitter_user_id numeric")
    if expires_in <= 0:
        raise ValueError(f"expires_in must be positive seconds, got {expires_in}")
    now = now or now_utc()
    upsert(
        conn,
        t.users,
        [{"id": user_id, "twitter_user_id": twitter_user_id, "handle": handle, "updated_at": now}],
        key=["id"],
        update=["twitter_user_id", "handle", "updated_at"],
    )
    conn.execute(sa.update(t.users).where(t.users.c.id == user_id).values(deleted_at=None))
    conn.execute(
        sa.update(t.tweets)
        .where(t.tweets.c.user_id == user_id, t.tweets.c.deleted_at.is_not(None))
        .values(deleted_at=None)
    )
    store_tokens(conn, vault, user_id, access_token, refresh_token, expires_in, now=now)
    active = conn.execute(
        sa.select(t.subscriptions.c.id).where(
            t.subscriptions.c.user_id == user_id, t.subscriptions.c.status == "active"
        )
    ).first()
    if active:
        conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.id == active.id).values(tier=tier))
    else:
        conn.execute(sa.insert(t.subscriptions).values(user_id=user_id, tier=tier, status="active", started_at=now))
    consent_log.record_consent(
        conn, user_id=user_id, action=consent_log.GRANT, source=source, ip_address=ip_address,
        user_agent=user_agent, now=now,
    )


def store_tokens(
    conn: Connection,
    vault: TokenVault,
    user_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_in: int,
    *,
    now: datetime | None = None,
) -> None:
    """Encrypt and store a token pair (a new grant clears any revocation)."""
    now = now or now_utc()
    upsert(
        conn,
        t.oauth_tokens,
        [
            {
                "user_id": user_id,
                "provider": "twitter",
                "access_token_encrypted": vault.encrypt(access_token),
                "refresh_token_encrypted": vault.encrypt(refresh_token) if refresh_token else None,
                "expires_at": now + timedelta(seconds=expires_in),
                "revoked": False,
                "revoked_at": None,
                "updated_at": now,
            }
        ],
        key=["user_id", "provider"],
    )


def load_token(conn: Connection, vault: TokenVault, user_id: str) -> StoredToken:
    row = conn.execute(
        sa.select(
            t.oauth_tokens.c.access_token_encrypted,
            t.oauth_tokens.c.refresh_token_encrypted,
            t.oauth_tokens.c.expires_at,
        ).where(t.oauth_tokens.c.user_id == user_id, t.oauth_tokens.c.provider == "twitter")
    ).first()
    if row is None:
        raise ConsentNotGranted(f"consent not granted for user {user_id}: no token")
    return StoredToken(
        access_token=vault.decrypt(row.access_token_encrypted),
        refresh_token=vault.decrypt(row.refresh_token_encrypted) if row.refresh_token_encrypted else None,
        expires_at=_utc(row.expires_at),
    )


def consent(conn: Connection, user_id: str) -> Consent:
    """Whether `user_id` may be fetched and analysed now: a token present and not revoked, and an
    active subscription."""
    user = conn.execute(
        sa.select(t.users.c.twitter_user_id, t.users.c.deleted_at).where(t.users.c.id == user_id)
    ).first()
    if user is None or user.deleted_at is not None:
        return Consent(user_id, False, "unknown or deleted user", None, None)
    token = conn.execute(
        sa.select(t.oauth_tokens.c.revoked).where(
            t.oauth_tokens.c.user_id == user_id, t.oauth_tokens.c.provider == "twitter"
        )
    ).first()
    subscription = conn.execute(
        sa.select(t.subscriptions.c.tier)
        .where(t.subscriptions.c.user_id == user_id, t.subscriptions.c.status == "active")
        .order_by(t.subscriptions.c.started_at.desc())
    ).first()
    tier = subscription.tier if subscription else None
    if token is None:
        return Consent(user_id, False, "no OAuth token", tier, user.twitter_user_id)
    if token.revoked:
        return Consent(user_id, False, "OAuth token revoked", tier, user.twitter_user_id)
    if subscription is None:
        return Consent(user_id, False, "no active subscription", None, user.twitter_user_id)
    return Consent(user_id, True, None, tier, user.twitter_user_id)


def require_consent(conn: Connection, user_id: str) -> Consent:
    state = consent(conn, user_id)
    if not state.granted:
        raise ConsentNotGranted(f"consent not granted for user {user_id}: {state.reason}")
    return state


def revoke_token(
    conn: Connection,
    user_id: str,
    *,
    now: datetime | None = None,
    source: str = "pipeline",
    reason: str | None = None,
) -> int:
    """Revoke the user's tokens and record the consent `revoke` (which starts the erasure).
    Returns the tokens newly revoked: 0 when they already were, and then the first revocation's
    time is kept and nothing more is recorded."""
    now = now or now_utc()
    revoked = conn.execute(
        sa.update(t.oauth_tokens)
        .where(t.oauth_tokens.c.user_id == user_id, t.oauth_tokens.c.revoked.is_(False))
        .values(revoked=True, revoked_at=now)
    ).rowcount
    if revoked or conn.execute(sa.select(t.users.c.id).where(t.users.c.id == user_id)).first():
        consent_log.record_consent(conn, user_id=user_id, action=consent_log.REVOKE, source=source, reason=reason, now=now)
    return revoked


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Users with tier, consent state and last fetch; never tokens."""
    rows = conn.execute(
        sa.select(t.users.c.id, t.users.c.handle, t.users.c.last_fetched_at)
        .where(t.users.c.deleted_at.is_(None))
        .order_by(t.users.c.id)
    ).all()
    out = []
    for row in rows:
        state = consent(conn, row.id)
        out.append(
            {
                "user_id": row.id,
                "handle": row.handle,
                "tier": state.tier,
                "consent": "granted" if state.granted else f"not granted ({state.reason})",
                "last_fetched_at": _utc(row.last_fetched_at),
            }
        )
    return out


def users_after(conn: Connection, after: tuple[datetime, str] | None, limit: int) -> list[tuple[str, datetime]]:
    """Live users after the keyset position (created_at, id), oldest first: the partition
    sensor's page. A keyset, not `created_at >= since`, so a page always moves forward even when
    thousands of users share a few seconds of `created_at` (a bulk import)."""
    query = sa.select(t.users.c.id, t.users.c.created_at).where(t.users.c.deleted_at.is_(None))
    if after is not None:
        at, user_id = after
        query = query.where(
            (t.users.c.created_at > at) | ((t.users.c.created_at == at) & (t.users.c.id > user_id))
        )
    rows = conn.execute(query.order_by(t.users.c.created_at, t.users.c.id).limit(limit)).all()
    return [(row.id, _utc(row.created_at)) for row in rows]


def user_ids_created_between(conn: Connection, start: datetime, end: datetime) -> list[str]:
    """Ids of live users created in [start, end]: the sensor's look-back for rows that
    committed after the cursor had passed their created_at."""
    query = sa.select(t.users.c.id).where(
        t.users.c.deleted_at.is_(None), t.users.c.created_at >= start, t.users.c.created_at <= end
    )
    return list(conn.execute(query).scalars())


# --- tweets -----------------------------------------------------------------------------------
def last_tweet_id(conn: Connection, user_id: str) -> int | None:
    return conn.execute(sa.select(sa.func.max(t.tweets.c.id)).where(t.tweets.c.user_id == user_id)).scalar()


def upsert_tweets(conn: Connection, user_id: str, tweets: Iterable[Any], *, source: str) -> tuple[int, int]:
    """Upsert tweets (objects with id, text, created_at, lang, public_metrics, entities) by id.
    Returns (rows sent, rows that were new)."""
    rows = [
        {
            "id": int(tw.id),
            "user_id": user_id,
            "text": tw.text,
            "lang": tw.lang,
            "tweeted_at": tw.created_at,
            "public_metrics": tw.public_metrics,
            "entities": tw.entities,
            "source": source,
        }
        for tw in tweets
    ]
    if not rows:
        return 0, 0
    ids = [r["id"] for r in rows]
    existing = set(conn.execute(sa.select(t.tweets.c.id).where(t.tweets.c.id.in_(ids))).scalars())
    upsert(conn, t.tweets, rows, key=["id"], update=["text", "lang", "public_metrics", "entities"])
    return len(rows), len(set(ids) - existing)


def count_tweets(conn: Connection, user_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(t.tweets).where(t.tweets.c.user_id == user_id)
    ).scalar_one()


def count_sanitized(conn: Connection, user_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(t.sanitized_tweets).where(t.sanitized_tweets.c.user_id == user_id)
    ).scalar_one()


def count_analyses(conn: Connection, user_id: str, model: str) -> int:
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(t.analyses)
        .where(t.analyses.c.user_id == user_id, t.analyses.c.model == model)
    ).scalar_one()


def mark_fetched(conn: Connection, user_id: str, now: datetime | None = None) -> None:
    conn.execute(sa.update(t.users).where(t.users.c.id == user_id).values(last_fetched_at=now or now_utc()))


def record_api_usage(
    conn: Connection,
    *,
    user_id: str | None,
    provider: str,
    operation: str,
    status_code: int | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    count: int = 1,
) -> None:
    """One row per call (or per event monitoring counts: `rate_limited`, `token_refresh_failed`,
    `quota_exceeded`)."""
    row = {
        "user_id": user_id,
        "provider": provider,
        "operation": operation,
        "status_code": status_code,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    conn.execute(sa.insert(t.api_usage), [row] * count)


# --- sanitized tweets ---------------------------------------------------------------------------
def tweets_to_sanitize(conn: Connection, user_id: str, redactor_version: str) -> list[sa.Row]:
    """Tweets of the user with no sanitized copy from this redactor version."""
    s = t.sanitized_tweets
    return conn.execute(
        sa.select(t.tweets.c.id, t.tweets.c.text)
        .select_from(t.tweets.outerjoin(s, s.c.tweet_id == t.tweets.c.id))
        .where(
            t.tweets.c.user_id == user_id,
            t.tweets.c.deleted_at.is_(None),
            sa.or_(s.c.tweet_id.is_(None), s.c.redactor_version != redactor_version),
        )
        .order_by(t.tweets.c.id)
    ).all()


def upsert_sanitized(conn: Connection, user_id: str, rows: Sequence[tuple[int, str, dict]], version: str) -> int:
    return upsert(
        conn,
        t.sanitized_tweets,
        [
            {"tweet_id": tid, "user_id": user_id, "text": text, "pii_counts": counts, "redactor_version": version}
            for tid, text, counts in rows
        ],
        key=["tweet_id"],
    )


def sanitized_texts(conn: Connection, user_id: str) -> list[sa.Row]:
    return conn.execute(
        sa.select(t.sanitized_tweets.c.tweet_id, t.sanitized_tweets.c.text).where(
            t.sanitized_tweets.c.user_id == user_id
        )
    ).all()


# --- analyses -----------------------------------------------------------------------------------
def pending_analysis(conn: Connection, user_id: str, model: str) -> list[sa.Row]:
    """Sanitized tweets with no analysis by `model` yet, oldest first."""
    a = t.analyses
    return conn.execute(
        sa.select(t.sanitized_tweets.c.tweet_id, t.sanitized_tweets.c.text)
        .select_from(
            t.sanitized_tweets.outerjoin(
                a, sa.and_(a.c.tweet_id == t.sanitized_tweets.c.tweet_id, a.c.model == model)
            )
        )
        .where(t.sanitized_tweets.c.user_id == user_id, a.c.id.is_(None))
        .order_by(t.sanitized_tweets.c.tweet_id)
    ).all()


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def analysed_this_month(conn: Connection, user_id: str, now: datetime | None = None) -> int:
    """The quota counter: tweets of the user analysed since the month began (UTC), any model."""
    start = month_start(now or now_utc())
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(t.analyses)
        .where(t.analyses.c.user_id == user_id, t.analyses.c.analysed_at >= start)
    ).scalar_one()


def upsert_analyses(conn: Connection, user_id: str, model: str, results: Sequence[Any], now: datetime) -> int:
    rows = [
        {
            "tweet_id": r.tweet_id,
            "user_id": user_id,
            "model": model,
            "sentiment_label": r.sentiment,
            "sentiment_score": float(r.score),
            "risk_flags": list(r.risk_flags),
            "topics": list(r.topics),
            "analysed_at": now,
        }
        for r in results
    ]
    upsert(conn, t.analyses, rows, key=["tweet_id", "model"])
    if rows:
        conn.execute(
            sa.delete(t.analysis_failures).where(
                t.analysis_failures.c.model == model,
                t.analysis_failures.c.tweet_id.in_([r["tweet_id"] for r in rows]),
            )
        )
    return len(rows)


def record_failures(conn: Connection, user_id: str, model: str, failures: Sequence[Any], now: datetime) -> int:
    if not failures:
        return 0
    f = t.analysis_failures
    ids = [x.tweet_id for x in failures]
    previous = dict(
        conn.execute(sa.select(f.c.tweet_id, f.c.attempts).where(f.c.model == model, f.c.tweet_id.in_(ids))).all()
    )
    upsert(
        conn,
        f,
        [
            {
                "tweet_id": x.tweet_id,
                "model": model,
                "user_id": user_id,
                "reason": x.reason[:256],
                "attempts": previous.get(x.tweet_id, 0) + 1,
                "failed_at": now,
            }
            for x in failures
        ],
        key=["tweet_id", "model"],
    )
    return len(failures)


def summary(conn: Connection, user_id: str) -> dict[str, Any]:
    """Counts by sentiment, mean score, risk flags by month: no text, no personal data."""
    a = t.analyses
    rows = conn.execute(
        sa.select(a.c.sentiment_label, a.c.sentiment_score, a.c.risk_flags, t.tweets.c.tweeted_at)
        .select_from(a.join(t.tweets, t.tweets.c.id == a.c.tweet_id))
        .where(a.c.user_id == user_id)
    ).all()
    by_sentiment = {"positive": 0, "neutral": 0, "negative": 0}
    flags_by_month: dict[str, dict[str, int]] = {}
    for row in rows:
        by_sentiment[row.sentiment_label] = by_sentiment.get(row.sentiment_label, 0) + 1
        month = _utc(row.tweeted_at).strftime("%Y-%m")
        bucket = flags_by_month.setdefault(month, {})
        for flag in row.risk_flags or []:
            bucket[flag] = bucket.get(flag, 0) + 1
    total = len(rows)
    return {
        "analysed": total,
        "by_sentiment": by_sentiment,
        "mean_score": round(sum(r.sentiment_score for r in rows) / total, 4) if total else None,
        "risk_flags_by_month": dict(sorted(flags_by_month.items())),
    }
