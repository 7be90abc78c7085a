"""Monitoring checks on `platform_health`: thresholds and health probes, every five minutes.

One multi-asset check (one step) evaluates them all at one time; each result carries its severity
and the value, threshold and window in its metadata, so the asset's Checks tab shows the history.
A failing check records an alert (once per check and window) and notifies it; a failing check
never fails the run, and neither does Slack or Sentry being down.
"""


from datetime import UTC, datetime

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource, RateLimitResource, SlackResource
from repazoo_assets.lib.health import rate_limit_storage
from repazoo_assets.lib.monitoring.alerts import build_notifier, record_and_notify, resend_unnotified
from repazoo_assets.lib.monitoring.checks import alert_for, evaluate_all
from repazoo_assets.lib.monitoring.thresholds import CheckOutcome

PLATFORM_HEALTH = dg.AssetKey("platform_health")

CHECK_DESCRIPTIONS = {
    "rate_limit_violations": "At most 10 rate-limit refusals (429 or limiter) in the last hour. WARN.",
    "token_refresh_failures": "At most 3 failed OAuth token refreshes in the last 24 hours. ERROR.",
    "quota_exceeded_attempts": "At most 5 analyses refused for exhausted quota in the last 12 hours. WARN.",
    "database_queries": (
        "At most 1,000 database transactions per 5 minutes (PostgreSQL's pg_stat_database, as a "
        "delta since the previous run; not measured on SQLite). WARN."
    ),
    "database_health": "The app database answers and its schema is migrated. ERROR.",
    "rate_limit_storage_health": "The rate-limit storage (Redis in production) answers. ERROR.",
    "object_store_health": "The object store takes a write, read-back and delete. ERROR.",
}

MONITORING_CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset=PLATFORM_HEALTH, description=description)
    for name, description in CHECK_DESCRIPTIONS.items()
]


class MonitoringConfig(dg.Config):
    evaluated_at: str | None = None
    """ISO 8601 time the checks evaluate at (the schedule passes its tick); now when unset."""
    slack_timeout_seconds: float = 2.0
    breaker_reset_seconds: float = 60.0


def evaluation_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _metadata(outcome: CheckOutcome, alert: str) -> dict:
    metadata = {
        "value": outcome.value,
        "threshold": outcome.threshold,
        "window": outcome.window,
        "window_key": outcome.window_key,
        "measured": outcome.measured,
        "alert": alert,
        **outcome.extra,
    }
    return {k: v for k, v in metadata.items() if v is not None}


@dg.multi_asset_check(
    specs=MONITORING_CHECK_SPECS,
    name="monitoring_checks",
    description="Platform thresholds and health probes; failing checks alert once per window.",
)
def monitoring_checks(
    context: dg.AssetCheckExecutionContext,
    config: MonitoringConfig,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
    rate_limits: RateLimitResource,
    slack: SlackResource,
):
    now = evaluation_time(config.evaluated_at)
    outcomes = evaluate_all(
        app_db.engine,
        object_store.store,
        object_store.buckets.raw,
        lambda: rate_limit_storage(rate_limits.storage_uri, rate_limits.key_prefix),
        now,
    )
    notifier = build_notifier(
        webhook_url=slack.webhook_url,
        rate_limit_storage_uri=rate_limits.storage_uri,
        key_prefix=rate_limits.key_prefix,
        logger=context.log,
        post_timeout=config.slack_timeout_seconds,
        reset_timeout=config.breaker_reset_seconds,
    )
    for outcome in outcomes:
        alert = alert_for(outcome)
        status = "none"
        if alert is not None:
            result = record_and_notify(app_db.engine, notifier, alert, now=now)
            status = f"new, Slack {result.slack.status}" if result.new else "already raised in this window"
        verdict = "passed" if outcome.passed else "FAILED"
        context.log.info(f"{outcome.check_name}: {verdict} ({outcome.description})")
        yield dg.AssetCheckResult(
            check_name=outcome.check_name,
            asset_key=PLATFORM_HEALTH,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity(outcome.severity),
            description=outcome.description,
            metadata=_metadata(outcome, status),
        )
    # Alerts Slack missed while it was down (deduplication would otherwise keep them silent).
    late = resend_unnotified(app_db.engine, notifier, now=now)
    if late:
        context.log.info(f"{late} earlier alert(s) sent to Slack late")
    if notifier.sentry is not None:
        notifier.sentry.flush()
