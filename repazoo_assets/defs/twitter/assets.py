"""The tweet pipeline, one partition per connected user:

    tweets ──► sanitized_tweets ──[blocking check: no PII]──► tweet_analyses ──► reputation_summary

Consent is checked before anything is fetched or analysed; every action writes an audit entry;
personal data never reaches run metadata or logs (tweet text is never logged, only counts).
"""


import base64
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import dagster as dg
import sqlalchemy as sa

from repazoo_assets.defs.resources import (
    AnthropicResource,
    AppDatabase,
    RateLimitResource,
    TokenVaultResource,
    TwitterApiResource,
)
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.privacy.pii import find_pii_many, redact_many_with_counts
from repazoo_assets.lib.security import audit

users_partitions = dg.DynamicPartitionsDefinition(name="users")

# The redactor's version: a new version re-sanitizes every tweet on the next run.
REDACTOR_VERSION = "pii-2"
ACTOR = "pipeline:twitter"

# Network steps: exponential backoff with jitter (Twitter 5xx, Anthropic overload, timeouts).
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# Backfills run users in batches: one run (and so one process start and one code location load,
# about 15 CPU-s here) for up to USER_BATCH users instead of one per user. A sensor's run, or
# Materialize on one partition, is a batch of one and behaves exactly as before.
USER_BATCH = 10
USER_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=USER_BATCH)
# `backfill_policy` is a beta parameter of `asset` in Dagster 1.13; used deliberately (above), so its
# warning is silenced for that parameter only.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of", category=dg.BetaWarning)

OWNERS = ["team:data-platform"]
# Owners of sensors are a beta parameter in Dagster 1.13; used deliberately, so the UI names who
# to call, and its warning (given while this module loads) is silenced for that parameter only.
warnings.filterwarnings("ignore", message="Parameter `owners` of", category=dg.BetaWarning)
# Shown in the UI (Owner of checks, which take no `owners`; tag of the jobs and sensor runs).
DOMAIN_TAGS = {"domain": "twitter"}

# --- column schemas: what the app database tables behind the assets hold ----------------------------
# Shown on each asset's page ("Columns"); a test fails if they drift from lib/db/tables.py.
PERSONAL = "personal data: stays in the app database, never in logs, metadata or prompts"


def _schema(*columns: tuple[str, str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind, description=text) for name, kind, text in columns])


TWEETS_SCHEMA = _schema(
    ("id", "bigint", "tweet id, a 64-bit snowflake: numeric order is time order (natural key)"),
    ("user_id", "string", "the partition: the Repazoo user whose tweet it is"),
    ("text", "text", f"the tweet as posted ({PERSONAL})"),
    ("lang", "string", "language code reported by Twitter"),
    ("tweeted_at", "timestamp", "when the tweet was posted (UTC)"),
    ("public_metrics", "json", "retweet, like, reply and quote counts"),
    ("entities", "json", "hashtags, mentions and URLs as reported by Twitter"),
    ("source", "string", "api or archive"),
    ("fetched_at", "timestamp", "when it was first stored"),
    ("deleted_at", "timestamp", "soft delete; hard delete after 30 days"),
)
SANITIZED_TWEETS_SCHEMA = _schema(
    ("tweet_id", "bigint", "the source tweet (natural key)"),
    ("user_id", "string", "the partition"),
    ("text", "text", "the tweet with personal data replaced by typed placeholders ([EMAIL], [PHONE], …)"),
    ("pii_counts", "json", "redacted items by kind"),
    ("redactor_version", "string", "the redactor that produced the text; a new version re-sanitizes"),
    ("created_at", "timestamp", "when it was sanitized"),
)
TWEET_ANALYSES_SCHEMA = _schema(
    ("id", "bigint", "surrogate key"),
    ("tweet_id", "bigint", "the analysed tweet; unique with model"),
    ("user_id", "string", "the partition"),
    ("model", "string", "what produced the result (a Claude model or the VADER lexicon)"),
    ("sentiment_label", "string", "positive, neutral or negative"),
    ("sentiment_score", "float", "-1 (very negative) to 1 (very positive)"),
    ("risk_score", "float", "reputation risk, 0 to 1"),
    ("risk_flags", "json", "risk categories from a fixed vocabulary"),
    ("input_tokens", "int", "the tweet's share of the request's input tokens"),
    ("output_tokens", "int", "the tweet's share of the request's output tokens"),
    ("analysed_at", "timestamp", "when it was analysed"),
    ("topics", "json", "topics named by the model"),
)
SENTIMENT_BY_PERIOD_SCHEMA = _schema(
    ("period", "string", "first day of the day, week or month (UTC)"),
    ("tweets", "int", "analysed tweets posted in the period"),
    ("positive", "int", "of which positive"),
    ("neutral", "int", "of which neutral"),
    ("negative", "int", "of which negative"),
    ("mean_score", "float", "mean sentiment score, -1 to 1 (empty when no tweet)"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse(context: dg.AssetExecutionContext, app_db: AppDatabase, state: store.Consent, action, what: str) -> None:
    audit.append(
        app_db.engine,
        actor=ACTOR,
        action=action,
        subject_type="user",
        subject_id=state.user_id,
        details={"outcome": "refused", "reason": state.reason},
    )
    raise UserSkipped(f"consent not granted for user {state.user_id}: {state.reason}; nothing was {what}")


# --- one user at a time, in a run of one or a backfill's batch -------------------------------------
class UserSkipped(dg.Failure):
    """Nothing more may be done for this user now, by rule (consent not granted, monthly quota
    spent), and it is audited where it is raised. A run of one user fails with it, loudly, and is
    not retried; a batch records the user as skipped and goes on (see `_each_user`)."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, allow_retries=False)


@dataclass
class _Users:
    """What a step did for the users of its run: each user's metadata, and who was skipped."""

    done: dict[str, dict]
    skipped: dict[str, str]

    def metadata(self) -> dict:
        """The metadata of the run's materialization: one user's as is. For a batch (a ranged
        materialization carries the same metadata for each of its partitions, so nothing of one
        user may pose as the batch's): counts and seconds summed over its users, counters (JSON)
        added up, texts that are the same for every user, every number per user in a table, and
        the users skipped with the reason; each user's full metadata is on that user's observation."""
        if len(self.done) == 1 and not self.skipped:
            return next(iter(self.done.values()))
        per_user = self.done.values()
        numeric = list(dict.fromkeys(
            key for m in per_user for key, value in m.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ))
        summed = [
            key for key in numeric
            if key not in _NOT_SUMMED and (key.endswith("_seconds") or all(isinstance(m.get(key, 0), int) for m in per_user))
        ]
        metadata: dict = {"users_in_run": len(self.done) + len(self.skipped)}
        for key in summed:
            metadata["rows_in_batch" if key == "dagster/row_count" else key] = round(sum(m.get(key) or 0 for m in per_user), 3)
        for key in dict.fromkeys(k for m in per_user for k in m if k not in numeric):
            values = [m.get(key) for m in per_user]
            if all(isinstance(v, str) for v in values) and len(set(values)) == 1:
                metadata[key] = values[0]  # e.g. the redactor version, the model of a batch of one tier
            elif all(isinstance(v, dg.JsonMetadataValue) and isinstance(v.data, dict) for v in values) and all(
                isinstance(n, int) for v in values for n in v.data.values()
            ):
                total: Counter[str] = Counter()
                for v in values:
                    total.update(v.data)
                metadata[key] = dg.MetadataValue.json(dict(sorted(total.items())))
        if self.done:
            columns = [dg.TableColumn("user_id", "string")] + [
                dg.TableColumn(key, "float" if any(isinstance(m.get(key), float) for m in per_user) else "int")
                for key in numeric
            ]
            metadata["per_user"] = dg.MetadataValue.table(
                [dg.TableRecord({"user_id": u, **{key: m.get(key) for key in numeric}}) for u, m in self.done.items()],
                schema=dg.TableSchema(columns=columns),
            )
        metadata["users_skipped"] = len(self.skipped)
        if self.skipped:
            metadata["skipped"] = dg.MetadataValue.json(self.skipped)
        return metadata


def _each_user(
    context: dg.AssetExecutionContext,
    work: Callable[[str], dict],
    *,
    materialize_each: bool = False,
) -> _Users:
    """`work(user_id)` for each user of the run, in partition order.

    A run of one user (a sensor's run, Materialize on one partition) raises what `work` raises,
    unchanged. In a batch (a backfill's run, or the sensor's for a bulk import), one user's
    trouble does not stop the others, and each user's work commits on its own:

    - a user skipped by rule (`UserSkipped`: consent not granted, quota spent; audited where
      raised) is recorded as skipped, and the batch goes on to succeed: its other users must not
      wait behind someone who will not be fetched today;
    - any other failure is collected, every user is still tried, and then the step fails once,
      naming the users and why (our own messages and exception types only: no personal data).
      See `_batch_failure` for when it is retried.

    Each user's metadata is logged as an observation of that user's partition, so the UI shows it
    per user; with `materialize_each` (an asset nothing downstream waits on, which then yields no
    output in a batch) as that partition's materialization itself, so each user that succeeded is
    materialized even when others fail.
    """
    user_ids = context.partition_keys
    if len(user_ids) == 1:
        return _Users({user_ids[0]: work(user_ids[0])}, {})
    users = _Users({}, {})
    failed: dict[str, BaseException] = {}
    event = dg.AssetMaterialization if materialize_each else dg.AssetObservation
    for user_id in user_ids:
        try:
            users.done[user_id] = work(user_id)
        except UserSkipped as exc:
            users.skipped[user_id] = exc.description or "skipped"
            context.log.warning(f"user {user_id}: skipped: {users.skipped[user_id]}")
            continue
        except Exception as exc:  # noqa: BLE001 - collected, then raised for the batch below
            failed[user_id] = exc
            context.log.warning(f"user {user_id}: {_failure_reason(exc)}{_where(exc)}")
            continue
        context.log_event(event(asset_key=context.asset_key, partition=user_id, metadata=users.done[user_id]))
    if failed:
        raise _batch_failure(failed, len(user_ids))
    return users


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, dg.Failure) and exc.description:
        return exc.description
    if isinstance(exc, dg.RetryRequested):
        return f"retry requested in {exc.seconds_to_wait or 0:.0f} s"
    return type(exc).__name__


def _where(exc: BaseException) -> str:
    """Where an unexpected error was raised (file, line, function of the last frames): something
    to debug with, since its message, which may quote data, is not repeated."""
    if isinstance(exc, dg.Failure | dg.RetryRequested):
        return ""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return " at " + " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))


def _batch_failure(failed: dict[str, BaseException], users: int) -> Exception:
    """One exception for a batch's failed users. Retried only when every failure may pass by
    retrying (so a user who failed for good is not tried again and again, recording each time):
    after the longest wait asked for if any user was rate limited, else by the step's RetryPolicy.
    Otherwise not retried: the users that failed for a passing reason run again with the next run
    of their partitions (incrementally)."""
    reasons = {user_id: _failure_reason(exc) for user_id, exc in failed.items()}
    for_good = [exc for exc in failed.values() if isinstance(exc, dg.Failure) and not exc.allow_retries]
    waits = [exc for exc in failed.values() if isinstance(exc, dg.RetryRequested)]
    if waits and not for_good:
        return dg.RetryRequested(
            max_retries=max(exc.max_retries for exc in waits),
            seconds_to_wait=max(exc.seconds_to_wait or 0 for exc in waits),
        )
    listed = "; ".join(f"{user_id}: {reason}" for user_id, reason in list(reasons.items())[:20])
    more = f"; and {len(failed) - 20} more" if len(failed) > 20 else ""
    return dg.Failure(
        description=f"{len(failed)} of {users} users failed, the others are stored: {listed}{more}",
        metadata={"failed_users": dg.MetadataValue.json(reasons), "users_in_run": users},
        allow_retries=not for_good,
    )


# Numbers not summed over a batch's users (shown per user only): a sum of quotas or of ratios
# means nothing.
_NOT_SUMMED = {"quota", "quota_used", "mean_score", "requests_per_tweet", "input_tokens_per_tweet"}


# --- tweets ---------------------------------------------------------------------------------------
class _ArchiveTweet:
    __slots__ = ("id", "text", "created_at", "lang", "public_metrics", "entities")

    def __init__(self, tweet) -> None:
        self.id = int(tweet.tweet_id)
        self.text = tweet.text
        self.created_at = tweet.created_at
        self.lang = tweet.lang
        self.public_metrics = {"retweet_count": tweet.retweet_count, "like_count": tweet.favorite_count}
        self.entities = tweet.entities


def _fetch_from_archive(archives_dir: str, twitter_user_id: str, since_id: int | None) -> tuple[list[_ArchiveTweet], int]:
    """The archive's tweets newer than `since_id`, and how many it holds in all."""
    from repazoo_assets.lib.demo.archive import read_tweets_js

    path = Path(archives_dir) / twitter_user_id / "tweets.js"
    if not path.exists():
        return [], 0
    everything = [_ArchiveTweet(a) for a in read_tweets_js(path)]
    return [tw for tw in everything if since_id is None or tw.id > since_id], len(everything)


def _fetch_from_api(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    token_vault: TokenVaultResource,
    rate_limits: RateLimitResource,
    twitter: TwitterApiResource,
    state: store.Consent,
) -> dict:
    """Incremental fetch through the API; stores each page as it comes (a failure keeps what was
    fetched). Returns counts for the metadata."""
    from repazoo_assets.lib.ratelimit import TWITTER_USER_LIMIT, Limiter, RateLimitExceeded
    from repazoo_assets.lib.twitter.client import (
        TwitterClient,
        TwitterError,
        TwitterRateLimited,
        TwitterServerError,
        TwitterUnauthorized,
    )

    user_id = state.user_id
    vault = token_vault.vault()
    limiter = Limiter(rate_limits.limiter(), TWITTER_USER_LIMIT, "twitter-user")
    engine = app_db.engine

    def permit() -> None:
        try:
            limiter.acquire(user_id)
        except RateLimitExceeded:
            with engine.begin() as conn:
                store.record_api_usage(conn, user_id=user_id, provider="twitter", operation="rate_limited")
            raise

    counts = {"requests": 0, "pages": 0, "fetched": 0, "new": 0, "token_refreshes": 0}
    client = TwitterClient(twitter.api_base_url, twitter.client_id, twitter.client_secret, before_request=permit)

    def refresh(token: store.StoredToken) -> store.StoredToken:
        if not token.refresh_token:
            raise dg.Failure(description=f"token of user {user_id} expired and there is no refresh token")
        before = client.requests_made
        try:
            pair = client.refresh(token.refresh_token)
        except TwitterError as exc:
            with engine.begin() as conn:
                store.record_api_usage(
                    conn, user_id=user_id, provider="twitter", operation="token_refresh_failed",
                    status_code=getattr(exc, "status", None),
                )
                audit.append(
                    conn, actor=ACTOR, action=audit.AuditAction.TOKEN_REFRESH, subject_type="user",
                    subject_id=user_id, details={"outcome": "failed", "error": type(exc).__name__},
                )
            # A refused refresh (4xx) will not change by retrying; a server error might.
            raise dg.Failure(
                description=f"token refresh failed for user {user_id}: {type(exc).__name__}",
                allow_retries=isinstance(exc, TwitterServerError),
            ) from None
        finally:
            counts["requests"] += client.requests_made - before
        now = _now()
        # Twitter returns a refresh token only with the offline.access scope: keep the old one.
        refresh_token = pair.refresh_token or token.refresh_token
        with engine.begin() as conn:
            store.store_tokens(conn, vault, user_id, pair.access_token, refresh_token, pair.expires_in, now=now)
            store.record_api_usage(conn, user_id=user_id, provider="twitter", operation="token_refresh", status_code=200)
            audit.append(
                conn, actor=ACTOR, action=audit.AuditAction.TOKEN_REFRESH, subject_type="user",
                subject_id=user_id, details={"outcome": "refreshed"},
            )
        counts["token_refreshes"] += 1
        context.log.info(f"user {user_id}: access token refreshed")
        return store.StoredToken(pair.access_token, refresh_token, None)

    try:
        with engine.connect() as conn:
            token = store.load_token(conn, vault, user_id)
            since_id = store.last_tweet_id(conn, user_id)
        if token.expired(_now()):
            token = refresh(token)
        pagination_token = None
        refreshed_on_401 = False
        while True:
            before = client.requests_made
            try:
                page = client.user_tweets_page(
                    state.twitter_user_id, token.access_token, since_id=since_id, pagination_token=pagination_token
                )
            except TwitterUnauthorized:
                counts["requests"] += client.requests_made - before
                with engine.begin() as conn:
                    store.record_api_usage(conn, user_id=user_id, provider="twitter", operation="user_tweets", status_code=401)
                if refreshed_on_401:
                    raise dg.Failure(description=f"user {user_id}: still unauthorized after a token refresh") from None
                refreshed_on_401 = True
                token = refresh(token)
                continue
            except TwitterRateLimited as exc:
                counts["requests"] += client.requests_made - before
                with engine.begin() as conn:
                    store.record_api_usage(conn, user_id=user_id, provider="twitter", operation="user_tweets", status_code=429)
                    store.record_api_usage(conn, user_id=user_id, provider="twitter", operation="rate_limited")
                wait = max(1.0, exc.retry_after())
                context.log.warning(f"user {user_id}: Twitter rate limit reached, retrying in {wait:.0f} s")
                raise dg.RetryRequested(max_retries=3, seconds_to_wait=wait) from None
            requests = client.requests_made - before
            counts["requests"] += requests
            counts["pages"] += 1
            with engine.begin() as conn:
                sent, new = store.upsert_tweets(conn, user_id, page.tweets, source="api")
                store.record_api_usage(
                    conn, user_id=user_id, provider="twitter", operation="user_tweets", status_code=200, count=requests
                )
            counts["fetched"] += sent
            counts["new"] += new
            context.log.info(f"user {user_id}: page {counts['pages']}, {sent} tweets ({new} new)")
            if not page.next_token:
                break
            pagination_token = page.next_token
    except RateLimitExceeded as exc:
        context.log.warning(f"user {user_id}: per-user request budget used up, retrying in {exc.retry_after:.0f} s")
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=max(1.0, exc.retry_after)) from None
    finally:
        counts["requests"] = client.requests_made  # every request sent, retries included
        client.close()
    return counts


@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    backfill_policy=USER_BACKFILL_POLICY,
    kinds={"python", "twitter", "postgres"},
    owners=OWNERS,
    metadata={"dagster/column_schema": TWEETS_SCHEMA, "dagster/table_name": "tweets"},
    pool="twitter_api",
    retry_policy=NETWORK_RETRY,
    description=(
        "The partition user's tweets: consent verified first (token present and not revoked, "
        "subscription active), then fetched incrementally (since_id, next_token pages) from the "
        "Twitter API v2 with the user's OAuth2 token (refreshed when expired or on a 401), one "
        "permit of the per-user limiter (900 requests / 15 min) per request; locally from the "
        "user's downloaded archive. Upserted by tweet id."
    ),
)
def tweets(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    token_vault: TokenVaultResource,
    rate_limits: RateLimitResource,
    twitter: TwitterApiResource,
) -> dg.MaterializeResult:
    per_user = _each_user(context, lambda user_id: _tweets_of(context, user_id, app_db, token_vault, rate_limits, twitter))
    return dg.MaterializeResult(metadata=per_user.metadata())


def _tweets_of(
    context: dg.AssetExecutionContext,
    user_id: str,
    app_db: AppDatabase,
    token_vault: TokenVaultResource,
    rate_limits: RateLimitResource,
    twitter: TwitterApiResource,
) -> dict:
    engine = app_db.engine
    with engine.connect() as conn:
        state = store.consent(conn, user_id)
    if not state.granted:
        _refuse(context, app_db, state, audit.AuditAction.FETCH, "fetched")
    started = time.perf_counter()
    if twitter.client_id and twitter.client_secret:
        counts = _fetch_from_api(context, app_db, token_vault, rate_limits, twitter, state)
        source = "api"
        older_than_cursor = 0  # the API is asked only for tweets after since_id
    else:
        with engine.connect() as conn:
            since_id = store.last_tweet_id(conn, user_id)
        fetched, in_archive = _fetch_from_archive(twitter.archives_dir or "", state.twitter_user_id, since_id)
        with engine.begin() as conn:
            sent, new = store.upsert_tweets(conn, user_id, fetched, source="archive")
        counts = {"requests": 0, "pages": 1 if fetched else 0, "fetched": sent, "new": new, "token_refreshes": 0}
        source = "archive"
        older_than_cursor = in_archive - len(fetched)
    fetch_seconds = time.perf_counter() - started
    with engine.begin() as conn:
        store.mark_fetched(conn, user_id)
        audit.append(
            conn, actor=ACTOR, action=audit.AuditAction.FETCH, subject_type="user", subject_id=user_id,
            details={"outcome": "fetched", "source": source, "tweets": counts["fetched"], "new": counts["new"]},
        )
        total = store.count_tweets(conn, user_id)
    return {
        "dagster/row_count": total,
        "source": source,
        "new_tweets": counts["new"],
        "fetched": counts["fetched"],
        "pages": counts["pages"],
        "api_requests": counts["requests"],
        "token_refreshes": counts["token_refreshes"],
        "fetch_seconds": round(fetch_seconds, 3),
        # Not stored again, and why: nothing is lost, these tweets are already in the table.
        "skipped": dg.MetadataValue.json(
            {"already_stored": counts["fetched"] - counts["new"], "older_than_last_fetch": older_than_cursor}
        ),
        "tier": state.tier,
    }


# --- sanitized tweets -----------------------------------------------------------------------------
@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    backfill_policy=USER_BACKFILL_POLICY,
    deps=[tweets],
    kinds={"python", "postgres"},
    owners=OWNERS,
    metadata={"dagster/column_schema": SANITIZED_TWEETS_SCHEMA, "dagster/table_name": "sanitized_tweets"},
    description=(
        "Every tweet of the user with personal data replaced by typed placeholders ([EMAIL], "
        "[PHONE], …), keyed by the source tweet. Re-sanitized when the redactor's version changes."
    ),
)
def sanitized_tweets(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    per_user = _each_user(context, lambda user_id: _sanitize(context, user_id, app_db))
    return dg.MaterializeResult(metadata=per_user.metadata())


def _sanitize(context: dg.AssetExecutionContext, user_id: str, app_db: AppDatabase) -> dict:
    engine = app_db.engine
    with engine.connect() as conn:
        pending = store.tweets_to_sanitize(conn, user_id, REDACTOR_VERSION)
    kinds: Counter[str] = Counter()
    rows = []
    started = time.perf_counter()
    for row, (text, counts) in zip(pending, redact_many_with_counts([r.text for r in pending]), strict=True):
        kinds.update(counts)
        rows.append((row.id, text, counts))
    redact_seconds = time.perf_counter() - started
    with engine.begin() as conn:
        store.upsert_sanitized(conn, user_id, rows, REDACTOR_VERSION)
        audit.append(
            conn, actor=ACTOR, action=audit.AuditAction.REDACT, subject_type="user", subject_id=user_id,
            details={"tweets": len(rows), "redacted_items": dict(kinds), "redactor": REDACTOR_VERSION},
        )
        total = store.count_sanitized(conn, user_id)
    context.log.info(f"user {user_id}: {len(rows)} tweets sanitized, {sum(kinds.values())} items redacted")
    return {
        "dagster/row_count": total,
        "sanitized_now": len(rows),
        # Not sanitized again, and why: their sanitized copy is from the current redactor.
        "skipped_current_version": total - len(rows),
        "tweets_with_pii": sum(1 for _, _, c in rows if c),
        "redacted_items": dg.MetadataValue.json(dict(sorted(kinds.items()))),
        "redactor_version": REDACTOR_VERSION,
        "redact_seconds": round(redact_seconds, 3),
    }


# Partitioned asset checks are a preview feature of Dagster 1.13; this is the one place we use it,
# deliberately (the check must run per user), so its warning is silenced here only.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)


@dg.asset_check(
    asset=sanitized_tweets,
    blocking=True,
    partitions_def=users_partitions,
    description=(
        "Blocking: re-scans the partition's sanitized tweets with the PII detector; fails, and so "
        "stops the analyses (nothing reaches Claude), if any personal datum remains."
    ),
    metadata={"owner": OWNERS[0], "kind": "python"},
)
def sanitized_tweets_pii_free(context: dg.AssetCheckExecutionContext, app_db: AppDatabase) -> dg.AssetCheckResult:
    user_ids = context.partition_keys  # one user, or a batch (then each user's verdict is logged too)
    batch = len(user_ids) > 1
    kinds: Counter[str] = Counter()
    scanned = dirty = 0
    scan_seconds = 0.0
    dirty_users = []
    for user_id in user_ids:
        with app_db.engine.connect() as conn:
            rows = store.sanitized_texts(conn, user_id)
        started = time.perf_counter()
        findings = find_pii_many([row.text for row in rows])
        seconds = time.perf_counter() - started
        user_kinds = Counter(f.kind for found in findings for f in found)
        user_dirty = sum(1 for found in findings if found)
        kinds.update(user_kinds)
        scanned, dirty, scan_seconds = scanned + len(rows), dirty + user_dirty, scan_seconds + seconds
        if user_dirty:
            dirty_users.append(user_id)
        if batch:
            # Dagster 1.13 records a check run on a partition range as one evaluation with no
            # partition; each user's own verdict keeps the per-partition check status (UI, and
            # the compliance report's counts) true.
            context.op_execution_context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=sanitized_tweets.key,
                    check_name="sanitized_tweets_pii_free",
                    passed=user_dirty == 0,
                    partition=user_id,
                    blocking=True,
                    metadata={
                        "tweets_scanned": len(rows),
                        "tweets_with_pii": user_dirty,
                        "kinds": dg.MetadataValue.json(dict(user_kinds)),
                        "scan_seconds": round(seconds, 3),
                    },
                    description=None if user_dirty == 0 else f"{user_dirty} sanitized tweets still contain personal data",
                )
            )
    metadata = {
        "tweets_scanned": scanned,
        "tweets_with_pii": dirty,
        "kinds": dg.MetadataValue.json(dict(kinds)),
        "scan_seconds": round(scan_seconds, 3),
    }
    if batch:
        metadata.update(users_in_run=len(user_ids), users_with_pii=dg.MetadataValue.json(dirty_users))
    return dg.AssetCheckResult(
        passed=dirty == 0,
        metadata=metadata,
        description=None if dirty == 0 else (
            f"{dirty} sanitized tweets still contain personal data"
            + (f" ({len(dirty_users)} of {len(user_ids)} users; the batch's analyses are held back)" if batch else "")
        ),
    )


# --- analyses ------------------------------------------------------------------------------------
class AnalysisConfig(dg.Config):
    """Tier routing and quotas; change them in the launchpad or in code."""

    basic_model: str = "claude-sonnet-5-5"
    pro_model: str = "claude-opus-5-5"
    basic_monthly_quota: int = 1000
    pro_monthly_quota: int = 10000
    chunk_size: int = 100  # tweets analysed (and stored) per commit: 4 requests of 25


@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    backfill_policy=USER_BACKFILL_POLICY,
    deps=[sanitized_tweets],
    kinds={"python", "anthropic", "postgres"},
    owners=OWNERS,
    metadata={"dagster/column_schema": TWEET_ANALYSES_SCHEMA, "dagster/table_name": "analyses"},
    pool="anthropic_api",
    retry_policy=NETWORK_RETRY,
    description=(
        "Sentiment and reputation risk of each sanitized tweet not yet analysed by the current "
        "model: basic tier → a Sonnet model, pro → an Opus model (batches of 25 per request, "
        "forced tool call, prompt guard, 50 requests / min shared limiter), within the tier's "
        "monthly quota. Locally, without ANTHROPIC_API_KEY, the VADER lexicon analyser."
    ),
)
def tweet_analyses(
    context: dg.AssetExecutionContext,
    config: AnalysisConfig,
    app_db: AppDatabase,
    rate_limits: RateLimitResource,
    anthropic: AnthropicResource,
) -> dg.MaterializeResult:
    per_user = _each_user(context, lambda user_id: _analyse_user(context, user_id, config, app_db, rate_limits, anthropic))
    return dg.MaterializeResult(metadata=per_user.metadata())


def _analyse_user(
    context: dg.AssetExecutionContext,
    user_id: str,
    config: AnalysisConfig,
    app_db: AppDatabase,
    rate_limits: RateLimitResource,
    anthropic: AnthropicResource,
) -> dict:
    from repazoo_assets.lib.analysis.base import TweetInput

    engine = app_db.engine
    with engine.connect() as conn:
        state = store.consent(conn, user_id)
    if not state.granted:
        _refuse(context, app_db, state, audit.AuditAction.ANALYSE, "analysed")
    quota = config.pro_monthly_quota if state.tier == "pro" else config.basic_monthly_quota
    analyser = _analyser(config, state.tier, rate_limits, anthropic)
    model = analyser.model
    with engine.connect() as conn:
        pending = store.pending_analysis(conn, user_id, model)
        used = store.analysed_this_month(conn, user_id)
    totals = Counter()
    not_analysed: Counter[str] = Counter()  # reason (a fixed vocabulary, never text) -> tweets
    over_quota = max(0, len(pending) - max(0, quota - used))
    allowed = pending[: max(0, quota - used)]
    started = time.perf_counter()
    for start in range(0, len(allowed), config.chunk_size):
        chunk = allowed[start : start + config.chunk_size]
        outcome = _analyse(analyser, [TweetInput(row.tweet_id, row.text) for row in chunk])
        now = _now()
        with engine.begin() as conn:
            store.upsert_analyses(conn, user_id, model, outcome.results, now)
            store.record_failures(conn, user_id, model, outcome.failures, now)
            if outcome.requests:
                store.record_api_usage(
                    conn, user_id=user_id, provider="anthropic", operation="messages", status_code=200,
                    input_tokens=outcome.input_tokens + outcome.cache_read_input_tokens
                    + outcome.cache_creation_input_tokens,
                    output_tokens=outcome.output_tokens,
                )
            audit.append(
                conn, actor=ACTOR, action=audit.AuditAction.ANALYSE, subject_type="user", subject_id=user_id,
                details={"model": model, "analysed": len(outcome.results), "failed": len(outcome.failures)},
            )
        totals.update(
            analysed=len(outcome.results), failed=len(outcome.failures), requests=outcome.requests,
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
            cache_read_input_tokens=outcome.cache_read_input_tokens,
            cache_creation_input_tokens=outcome.cache_creation_input_tokens,
        )
        not_analysed.update(failure.reason for failure in outcome.failures)
        context.log.info(
            f"user {user_id}: {totals['analysed'] + totals['failed']}/{len(allowed)} tweets through {model}"
        )
    if over_quota:
        with engine.begin() as conn:
            store.record_api_usage(conn, user_id=user_id, provider="anthropic", operation="quota_exceeded")
        raise UserSkipped(
            f"monthly quota reached for user {user_id}: tier {state.tier} allows {quota} analysed "
            f"tweets per month, {used + totals['analysed']} used; {over_quota} tweets left unanalysed"
        )
    analyse_seconds = time.perf_counter() - started
    with engine.connect() as conn:
        total = store.count_analyses(conn, user_id, model)
    analysed = totals["analysed"]
    return {
        "dagster/row_count": total,
        "model": model,
        "tier": state.tier,
        "analysed_now": analysed,
        "failed_now": totals["failed"],
        "requests": totals["requests"],
        "input_tokens": totals["input_tokens"],
        "output_tokens": totals["output_tokens"],
        "cache_read_input_tokens": totals["cache_read_input_tokens"],
        "cache_creation_input_tokens": totals["cache_creation_input_tokens"],
        "analyse_seconds": round(analyse_seconds, 3),
        # Left unanalysed, and why (retried on the next run); never a made-up result.
        "not_analysed": dg.MetadataValue.json(dict(sorted(not_analysed.items()))),
        "requests_per_tweet": round(totals["requests"] / analysed, 4) if analysed else 0.0,
        "input_tokens_per_tweet": round(totals["input_tokens"] / analysed, 1) if analysed else 0.0,
        "quota_used": used + analysed,
        "quota": quota,
    }


def _analyser(config: AnalysisConfig, tier: str | None, rate_limits: RateLimitResource, anthropic: AnthropicResource):
    if not anthropic.api_key:
        from repazoo_assets.lib.analysis.vader import VaderAnalyser

        return VaderAnalyser()
    from repazoo_assets.lib.analysis.claude import ClaudeAnalyser
    from repazoo_assets.lib.ratelimit import ANTHROPIC_LIMIT, Limiter

    limiter = Limiter(rate_limits.limiter(), ANTHROPIC_LIMIT, "anthropic")
    return ClaudeAnalyser(
        anthropic.api_key,
        config.pro_model if tier == "pro" else config.basic_model,
        base_url=anthropic.base_url,
        before_request=lambda: limiter.acquire("platform"),
    )


def _analyse(analyser, inputs):
    from repazoo_assets.lib.ratelimit import RateLimitExceeded

    try:
        return analyser.analyse(inputs)
    except RateLimitExceeded as exc:
        raise dg.RetryRequested(max_retries=5, seconds_to_wait=max(1.0, exc.retry_after)) from None


# --- sentiment over time: plain functions (no Dagster), aggregates and dates only ------------------
CHART_MAX_PERIODS = 60
COLOURS = {"positive": "#2e9d5b", "neutral": "#a3acb9", "negative": "#d64545", "line": "#4f43dd"}


@dataclass(frozen=True)
class Period:
    start: date
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    score_sum: float = 0.0

    @property
    def tweets(self) -> int:
        return self.positive + self.neutral + self.negative

    @property
    def mean_score(self) -> float | None:
        return round(self.score_sum / self.tweets, 4) if self.tweets else None


def _period_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next_period(start: date, unit: str) -> date:
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def sentiment_by_period(scored: Iterable[tuple[datetime, str, float]]) -> tuple[str, list[Period]]:
    """(tweeted_at, label, score) rows -> the unit (day for up to 45 days, week up to a year, else
    month) and one period per unit from the first to the last tweet, empty ones included, so the
    chart's x axis is time; at most the last CHART_MAX_PERIODS."""
    scored = [(when if when.tzinfo else when.replace(tzinfo=UTC), label, score) for when, label, score in scored]
    if not scored:
        return "day", []
    first = min(when for when, _, _ in scored).astimezone(UTC).date()
    last = max(when for when, _, _ in scored).astimezone(UTC).date()
    span = (last - first).days
    unit = "day" if span <= 45 else "week" if span <= 366 else "month"
    sums: dict[date, Counter] = {}
    for when, label, score in scored:
        bucket = sums.setdefault(_period_start(when.astimezone(UTC).date(), unit), Counter())
        bucket[label] += 1
        bucket["score"] += score
    periods = []
    start, end = _period_start(first, unit), _period_start(last, unit)
    while start <= end:
        c = sums.get(start, Counter())
        periods.append(Period(start, c["positive"], c["neutral"], c["negative"], float(c["score"])))
        start = _next_period(start, unit)
    return unit, periods[-CHART_MAX_PERIODS:]


def sentiment_chart_svg(unit: str, periods: list[Period]) -> str:
    """A small SVG: mean sentiment per period (line, -1…+1) above the tweets per period stacked
    by sentiment. Dates and counts only."""
    width, height, left, right = 640, 250, 46, 14
    top, mid, bottom = 34, 84, 134  # score panel: +1, 0, -1
    bars_top, bars_bottom = 152, 212
    n = max(1, len(periods))
    slot = (width - left - right) / n
    most = max([p.tweets for p in periods] + [1])

    def x(i: int) -> float:
        return left + slot * (i + 0.5)

    def y(score: float) -> float:
        return mid - score * (mid - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="#1f2937">'
        f"Mean sentiment and analysed tweets per {unit}</text>",
    ]
    for score, label in ((1, "+1"), (0, "0"), (-1, "−1")):
        dash = "" if score else ' stroke-dasharray="4 3"'
        parts.append(f'<line x1="{left}" y1="{y(score):.1f}" x2="{width - right}" y2="{y(score):.1f}" stroke="#d1d5db"{dash}/>')
        parts.append(f'<text x="{left - 6}" y="{y(score) + 4:.1f}" text-anchor="end" fill="#6b7280">{label}</text>')
    parts.append(f'<text x="{left - 6}" y="{bars_top + 4}" text-anchor="end" fill="#6b7280">{most}</text>')
    parts.append(f'<line x1="{left}" y1="{bars_bottom}" x2="{width - right}" y2="{bars_bottom}" stroke="#d1d5db"/>')
    bar_width = max(1.0, slot * 0.7)
    for i, p in enumerate(periods):
        base = float(bars_bottom)
        for label in ("negative", "neutral", "positive"):
            h = getattr(p, label) / most * (bars_bottom - bars_top)
            if h:
                base -= h
                parts.append(
                    f'<rect class="{label}" x="{x(i) - bar_width / 2:.1f}" y="{base:.1f}" width="{bar_width:.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[label]}"/>'
                )
    path, pen_down = [], False
    for i, p in enumerate(periods):
        if p.mean_score is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{x(i):.1f},{y(p.mean_score):.1f}")
        pen_down = True
        parts.append(f'<circle class="mean" cx="{x(i):.1f}" cy="{y(p.mean_score):.1f}" r="2.5" fill="{COLOURS["line"]}"/>')
    if path:
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{COLOURS["line"]}" stroke-width="2"/>')
    if periods:
        ticks = sorted({0, len(periods) // 2, len(periods) - 1})
        for i in ticks:
            parts.append(
                f'<text x="{x(i):.1f}" y="{bars_bottom + 16}" text-anchor="middle" fill="#374151">'
                f"{escape(periods[i].start.isoformat())}</text>"
            )
    legend_x = left
    for label in ("positive", "neutral", "negative"):
        parts.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{COLOURS[label]}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 3}" fill="#374151">{label}</text>')
        legend_x += 80
    parts.append(f'<line x1="{legend_x}" y1="{height - 7}" x2="{legend_x + 16}" y2="{height - 7}" stroke="{COLOURS["line"]}" stroke-width="2"/>')
    parts.append(f'<text x="{legend_x + 20}" y="{height - 3}" fill="#374151">mean score</text>')
    parts.append("</svg>")
    return "".join(parts)


def sentiment_chart_markdown(unit: str, periods: list[Period]) -> str:
    """The chart as an embedded image (the UI renders `data:` images in Markdown metadata) and a
    caption that says the same in words."""
    if not periods:
        return "No analysed tweets yet."
    svg = base64.b64encode(sentiment_chart_svg(unit, periods).encode()).decode()
    first, last = periods[0].start.isoformat(), periods[-1].start.isoformat()
    scored = [p for p in periods if p.tweets]
    low, high = min(scored, key=lambda p: p.mean_score), max(scored, key=lambda p: p.mean_score)
    return (
        f"![Mean sentiment and analysed tweets per {unit}, {first} to {last}](data:image/svg+xml;base64,{svg})\n\n"
        f"{sum(p.tweets for p in periods)} analysed tweets, {first} → {last}, per {unit}. Lowest mean "
        f"{low.mean_score:+.2f} ({low.start.isoformat()}), highest {high.mean_score:+.2f} ({high.start.isoformat()})."
    )


def _scored_tweets(conn: sa.Connection, user_id: str) -> list[tuple[datetime, str, float]]:
    """(tweeted_at, label, score) of each tweet's newest analysis; deleted tweets left out."""
    a = t.analyses
    rows = conn.execute(
        sa.select(a.c.tweet_id, a.c.sentiment_label, a.c.sentiment_score, t.tweets.c.tweeted_at)
        .select_from(a.join(t.tweets, t.tweets.c.id == a.c.tweet_id))
        .where(a.c.user_id == user_id, t.tweets.c.deleted_at.is_(None))
        .order_by(a.c.analysed_at, a.c.id)
    ).all()
    newest = {row.tweet_id: (row.tweeted_at, row.sentiment_label, row.sentiment_score) for row in rows}
    return list(newest.values())


def _period_table(periods: list[Period]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        [
            dg.TableRecord(
                {
                    "period": p.start.isoformat(), "tweets": p.tweets, "positive": p.positive,
                    "neutral": p.neutral, "negative": p.negative, "mean_score": p.mean_score,
                }
            )
            for p in periods
        ],
        schema=SENTIMENT_BY_PERIOD_SCHEMA,
    )


# --- summary ---------------------------------------------------------------------------------------
@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    backfill_policy=USER_BACKFILL_POLICY,
    deps=[tweet_analyses],
    output_required=False,  # a batch materializes each user itself (below)
    kinds={"python", "postgres"},
    owners=OWNERS,
    description=(
        "Per user: tweets by sentiment, average score, risk flags by month, and a chart of the "
        "mean sentiment and tweet count per day, week or month (aggregates only: no text, no "
        "personal data)."
    ),
)
def reputation_summary(context: dg.AssetExecutionContext, app_db: AppDatabase) -> Iterator[dg.MaterializeResult]:
    # In a batch each user's summary (its chart included) is that user's own materialization, so
    # the partition's page shows it; nothing downstream waits on this asset's output.
    per_user = _each_user(context, lambda user_id: _summary_of(context, user_id, app_db), materialize_each=True)
    if len(context.partition_keys) == 1:
        yield dg.MaterializeResult(metadata=per_user.metadata())


def _summary_of(context: dg.AssetExecutionContext, user_id: str, app_db: AppDatabase) -> dict:
    with app_db.engine.connect() as conn:
        result = store.summary(conn, user_id)
        scored = _scored_tweets(conn, user_id)
        stored = store.count_tweets(conn, user_id)
    by = result["by_sentiment"]
    total = result["analysed"] or 1
    table = ["| sentiment | tweets | share |", "|---|---:|---:|"]
    chart = []
    for label in ("positive", "neutral", "negative"):
        share = by.get(label, 0) / total
        table.append(f"| {label} | {by.get(label, 0)} | {share:.0%} |")
        chart.append(f"{label:<9} {'█' * round(share * 30):<30} {share:.0%}")
    flags = ["| month | risk flags |", "|---|---|"] + [
        f"| {month} | {', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or '—'} |"
        for month, counts in result["risk_flags_by_month"].items()
    ]
    markdown = "\n".join(table) + "\n\n```\n" + "\n".join(chart) + "\n```\n\n" + "\n".join(flags)
    unit, periods = sentiment_by_period(scored)
    context.log.info(f"user {user_id}: {result['analysed']} analysed tweets over {len(periods)} {unit}s")
    return {
        "dagster/row_count": result["analysed"],
        "mean_score": result["mean_score"],
        "by_sentiment": dg.MetadataValue.json(by),
        "summary": dg.MetadataValue.md(markdown),
        "sentiment_over_time": dg.MetadataValue.md(sentiment_chart_markdown(unit, periods)),
        "sentiment_by_period": _period_table(periods),
        "period": unit,
        # Stored tweets the summary does not cover yet, and why: not analysed (failed or over quota).
        "tweets_not_analysed": max(0, stored - len(scored)),
    }


# --- jobs: what an operator launches by hand (Launchpad, or Materialize on a partition) ------------
tweet_pipeline_job = dg.define_asset_job(
    "tweet_pipeline",
    selection=dg.AssetSelection.assets(tweets, sanitized_tweets, tweet_analyses, reputation_summary),
    description="Ingest one user: fetch, sanitize, PII-check, analyse and summarize the user's tweets.",
    # No `owners`: a beta parameter on jobs that warns whenever the job is built (the assets and
    # the sensor name the owner); the domain tag lets the Runs page filter this pipeline's runs.
    tags=DOMAIN_TAGS,
)
