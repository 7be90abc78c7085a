"""The tweet pipeline, one partition per connected user:

    tweets ──► sanitized_tweets ──[blocking check: no PII]──► tweet_analyses ──► reputation_summary

Consent is checked before anything is fetched or analysed; every action writes an audit entry;
personal data never reaches run metadata or logs (tweet text is never logged, only counts).
"""


import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from repazoo_assets.defs.resources import (
    AnthropicResource,
    AppDatabase,
    RateLimitResource,
    TokenVaultResource,
    TwitterApiResource,
)
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.privacy.pii import find_pii_many, redact_many_with_counts
from repazoo_assets.lib.security import audit

users_partitions = dg.DynamicPartitionsDefinition(name="users")

# The redactor's version: a new version re-sanitizes every tweet on the next run.
REDACTOR_VERSION = "pii-2"
ACTOR = "pipeline:twitter"

# Network steps: exponential backoff with jitter (Twitter 5xx, Anthropic overload, timeouts).
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


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
    raise dg.Failure(
        description=f"consent not granted for user {state.user_id}: {state.reason}; nothing was {what}",
        allow_retries=False,
    )


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


def _fetch_from_archive(archives_dir: str, twitter_user_id: str, since_id: int | None) -> list[_ArchiveTweet]:
    from repazoo_assets.lib.demo.archive import read_tweets_js

    path = Path(archives_dir) / twitter_user_id / "tweets.js"
    if not path.exists():
        return []
    return [
        tw for tw in (_ArchiveTweet(a) for a in read_tweets_js(path)) if since_id is None or tw.id > since_id
    ]


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
    kinds={"python", "twitter"},
    owners=["team:data-platform"],
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
    user_id = context.partition_key
    engine = app_db.engine
    with engine.connect() as conn:
        state = store.consent(conn, user_id)
    if not state.granted:
        _refuse(context, app_db, state, audit.AuditAction.FETCH, "fetched")
    if twitter.client_id and twitter.client_secret:
        counts = _fetch_from_api(context, app_db, token_vault, rate_limits, twitter, state)
        source = "api"
    else:
        with engine.connect() as conn:
            since_id = store.last_tweet_id(conn, user_id)
        fetched = _fetch_from_archive(twitter.archives_dir or "", state.twitter_user_id, since_id)
        with engine.begin() as conn:
            sent, new = store.upsert_tweets(conn, user_id, fetched, source="archive")
        counts = {"requests": 0, "pages": 1 if fetched else 0, "fetched": sent, "new": new, "token_refreshes": 0}
        source = "archive"
    with engine.begin() as conn:
        store.mark_fetched(conn, user_id)
        audit.append(
            conn, actor=ACTOR, action=audit.AuditAction.FETCH, subject_type="user", subject_id=user_id,
            details={"outcome": "fetched", "source": source, "tweets": counts["fetched"], "new": counts["new"]},
        )
        total = store.count_tweets(conn, user_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "source": source,
            "new_tweets": counts["new"],
            "fetched": counts["fetched"],
            "pages": counts["pages"],
            "api_requests": counts["requests"],
            "token_refreshes": counts["token_refreshes"],
            "tier": state.tier,
        }
    )


# --- sanitized tweets -----------------------------------------------------------------------------
@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    deps=[tweets],
    kinds={"python"},
    owners=["team:data-platform"],
    description=(
        "Every tweet of the user with personal data replaced by typed placeholders ([EMAIL], "
        "[PHONE], …), keyed by the source tweet. Re-sanitized when the redactor's version changes."
    ),
)
def sanitized_tweets(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    user_id = context.partition_key
    engine = app_db.engine
    with engine.connect() as conn:
        pending = store.tweets_to_sanitize(conn, user_id, REDACTOR_VERSION)
    kinds: Counter[str] = Counter()
    rows = []
    for row, (text, counts) in zip(pending, redact_many_with_counts([r.text for r in pending]), strict=True):
        kinds.update(counts)
        rows.append((row.id, text, counts))
    with engine.begin() as conn:
        store.upsert_sanitized(conn, user_id, rows, REDACTOR_VERSION)
        audit.append(
            conn, actor=ACTOR, action=audit.AuditAction.REDACT, subject_type="user", subject_id=user_id,
            details={"tweets": len(rows), "redacted_items": dict(kinds), "redactor": REDACTOR_VERSION},
        )
        total = store.count_sanitized(conn, user_id)
    context.log.info(f"user {user_id}: {len(rows)} tweets sanitized, {sum(kinds.values())} items redacted")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "sanitized_now": len(rows),
            "tweets_with_pii": sum(1 for _, _, c in rows if c),
            "redacted_items": dg.MetadataValue.json(dict(sorted(kinds.items()))),
            "redactor_version": REDACTOR_VERSION,
        }
    )


# Partitioned asset checks are a preview feature of Dagster 1.13; this is the one place we use it,
# deliberately (the check must run per user), so its warning is silenced here only.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)


@dg.asset_check(
    asset=sanitized_tweets,
    blocking=True,
    partitions_def=users_partitions,
    description="Re-scans the partition's sanitized tweets; fails (and blocks the analyses) if any personal datum remains.",
)
def sanitized_tweets_pii_free(context: dg.AssetCheckExecutionContext, app_db: AppDatabase) -> dg.AssetCheckResult:
    user_id = context.partition_key
    with app_db.engine.connect() as conn:
        rows = store.sanitized_texts(conn, user_id)
    findings = find_pii_many([row.text for row in rows])
    kinds = Counter(f.kind for found in findings for f in found)
    dirty = sum(1 for found in findings if found)
    return dg.AssetCheckResult(
        passed=dirty == 0,
        metadata={"tweets_scanned": len(rows), "tweets_with_pii": dirty, "kinds": dg.MetadataValue.json(dict(kinds))},
        description=None if dirty == 0 else f"{dirty} sanitized tweets still contain personal data",
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
    deps=[sanitized_tweets],
    kinds={"python", "anthropic"},
    owners=["team:data-platform"],
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
    from repazoo_assets.lib.analysis.base import TweetInput

    user_id = context.partition_key
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
    over_quota = max(0, len(pending) - max(0, quota - used))
    allowed = pending[: max(0, quota - used)]
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
        )
        context.log.info(
            f"user {user_id}: {totals['analysed'] + totals['failed']}/{len(allowed)} tweets through {model}"
        )
    if over_quota:
        with engine.begin() as conn:
            store.record_api_usage(conn, user_id=user_id, provider="anthropic", operation="quota_exceeded")
        raise dg.Failure(
            description=(
                f"monthly quota reached for user {user_id}: tier {state.tier} allows {quota} analysed "
                f"tweets per month, {used + totals['analysed']} used; {over_quota} tweets left unanalysed"
            ),
            allow_retries=False,
        )
    with engine.connect() as conn:
        total = store.count_analyses(conn, user_id, model)
    analysed = totals["analysed"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "model": model,
            "tier": state.tier,
            "analysed_now": analysed,
            "failed_now": totals["failed"],
            "requests": totals["requests"],
            "input_tokens": totals["input_tokens"],
            "output_tokens": totals["output_tokens"],
            "cache_read_input_tokens": totals["cache_read_input_tokens"],
            "requests_per_tweet": round(totals["requests"] / analysed, 4) if analysed else 0.0,
            "input_tokens_per_tweet": round(totals["input_tokens"] / analysed, 1) if analysed else 0.0,
            "quota_used": used + analysed,
            "quota": quota,
        }
    )


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


# --- summary ---------------------------------------------------------------------------------------
@dg.asset(
    group_name="twitter",
    partitions_def=users_partitions,
    deps=[tweet_analyses],
    kinds={"python"},
    owners=["team:data-platform"],
    description="Per user: tweets by sentiment, average score, risk flags by month (no text, no personal data).",
)
def reputation_summary(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    user_id = context.partition_key
    with app_db.engine.connect() as conn:
        result = store.summary(conn, user_id)
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
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result["analysed"],
            "mean_score": result["mean_score"],
            "by_sentiment": dg.MetadataValue.json(by),
            "summary": dg.MetadataValue.md(markdown),
        }
    )


tweet_pipeline_job = dg.define_asset_job(
    "tweet_pipeline",
    selection=dg.AssetSelection.assets(tweets, sanitized_tweets, tweet_analyses, reputation_summary),
    description="Fetch, sanitize, analyse and summarize one user's tweets.",
)
