"""Data retention, daily at 03:00 UTC: `data_retention_schedule` ──► `data_retention`.

The rules and their windows are in `lib/compliance/retention.py`. The asset is unpartitioned and
its clock is the schedule's tick, passed in run config (`now`), so a late or re-executed run
applies the windows as of the tick it belongs to, and tests use a fixed clock. Every window is
run config (defaults 90/90/30/30 days); `dry_run` counts without deleting.
"""


from datetime import UTC, datetime

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource
from repazoo_assets.defs.twitter.assets import users_partitions
from repazoo_assets.lib.compliance import retention

ASSET = "data_retention"
ACTOR = "pipeline:retention"


class RetentionConfig(dg.Config):
    now: str | None = None  # ISO 8601 with offset; the schedule passes its tick, else the current time
    analyses_days: int = 90
    inactive_days: int = 90
    grace_days: int = 30
    hard_delete_days: int = 30
    dry_run: bool = False
    batch_size: int = 1000


def _clock(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise dg.Failure(description=f"now: {value!r} has no UTC offset", allow_retries=False)
    return moment.astimezone(UTC)


@dg.asset(
    name=ASSET,
    group_name="compliance",
    # Idempotent (a re-run finds nothing more to delete), so object-store hiccups are retried.
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    kinds={"python"},
    owners=["team:data-platform"],
    description=(
        "Applies the retention rules: analyses of inactive users after 90 days, data of revoked "
        "tokens, soft delete 30 days after a cancellation, hard delete 30 days later, expired "
        "export objects. Counts per rule in the metadata; `dry_run` deletes nothing."
    ),
)
def data_retention(
    context: dg.AssetExecutionContext,
    config: RetentionConfig,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    now = _clock(config.now)
    try:
        windows = retention.RetentionWindows(
            config.analyses_days, config.inactive_days, config.grace_days, config.hard_delete_days
        )
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    report = retention.apply_retention(
        app_db.engine, object_store.store(), object_store.buckets, now=now, windows=windows,
        dry_run=config.dry_run, batch_size=config.batch_size, actor=ACTOR,
    )
    if not config.dry_run:
        instance = context.instance
        for user_id in report.hard_deleted_user_ids:
            if instance.has_dynamic_partition(users_partitions.name, user_id):
                instance.delete_dynamic_partition(users_partitions.name, user_id)
    verb = "would delete" if config.dry_run else "deleted"
    context.log.info(f"retention as of {now.isoformat()}: {verb} {report.total} rows and objects")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.total,
            **report.counts,
            "dry_run": config.dry_run,
            "as_of": now.isoformat(),
            "windows_days": dg.MetadataValue.json(
                {"analyses": windows.analyses_days, "inactive": windows.inactive_days,
                 "grace": windows.grace_days, "hard_delete": windows.hard_delete_days}
            ),
        }
    )


data_retention_job = dg.define_asset_job(
    "data_retention_job",
    selection=dg.AssetSelection.assets(data_retention),
    description="Apply the data retention rules once (run config: clock, windows, dry run).",
)


@dg.schedule(
    job=data_retention_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retention rules every day at 03:00 UTC, as of the tick.",
)
def data_retention_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
    return dg.RunRequest(
        run_key=f"retention:{tick:%Y-%m-%d}",
        run_config={"ops": {ASSET: {"config": {"now": tick.isoformat()}}}},
        tags={"repazoo/retention_as_of": tick.isoformat()},
    )
