"""Alert on every failed run of this code location: a row in `alerts`, Slack and Sentry.

The alert names the job, the partition, the failed steps and the error's class, never the error's
message (see lib/monitoring/run_failures.py). One alert per run, even if the sensor sees it twice.
"""


import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, RateLimitResource, SlackResource
from repazoo_assets.lib.monitoring.alerts import build_notifier, record_and_notify
from repazoo_assets.lib.monitoring.run_failures import error_class, run_failure_alert
from repazoo_assets.lib.monitoring.sentry import reporter_from_env

PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = "dagster/will_retry"


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records an alert and notifies Slack/Sentry for every failed run (no personal data).",
)
def run_failure_alerts(
    context: dg.RunFailureSensorContext,
    app_db: AppDatabase,
    slack: SlackResource,
    rate_limits: RateLimitResource,
) -> None:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    classes = [c for c in (error_class(e.step_failure_data.error) for e in step_failures) if c]
    if not classes:
        run_error = getattr(context.failure_event.event_specific_data, "error", None)
        classes = [error_class(run_error) or "RunFailure"]
    alert = run_failure_alert(
        job_name=run.job_name,
        run_id=run.run_id,
        partition=run.tags.get(PARTITION_TAG),
        error_classes=classes,
        failed_steps=[e.step_key for e in step_failures if e.step_key],
        will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
    )
    notifier = build_notifier(
        webhook_url=slack.webhook_url,
        rate_limit_storage_uri=rate_limits.storage_uri,
        key_prefix=rate_limits.key_prefix,
        logger=context.log,
        sentry=None,  # a run failure goes to Sentry as such below, with its own tags
    )
    result = record_and_notify(app_db.engine, notifier, alert)
    sentry = reporter_from_env()
    if result.new and sentry is not None:
        sentry.capture_run_failure(
            job_name=run.job_name, run_id=run.run_id, partition=run.tags.get(PARTITION_TAG),
            error_class=", ".join(sorted(set(classes))), message=alert.message,
        )
        sentry.flush()
    context.log.info(f"run {run.run_id[:8]} failure: alert {'raised' if result.new else 'already raised'}")
