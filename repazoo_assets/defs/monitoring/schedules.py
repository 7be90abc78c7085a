"""Every five minutes (UTC) the `monitoring` job evaluates at the tick's time."""

from datetime import UTC, datetime

import dagster as dg

from repazoo_assets.defs.monitoring.jobs import monitoring_job


@dg.schedule(
    job=monitoring_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monitoring thresholds and health probes every 5 minutes.",
)
def monitoring_every_5_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(
        run_key=tick.isoformat(),
        run_config={"ops": {"monitoring_checks": {"config": {"evaluated_at": tick.isoformat()}}}},
    )
