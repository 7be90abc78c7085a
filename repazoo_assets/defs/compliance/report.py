"""The daily compliance report for operators and auditors: `compliance_report_daily_schedule`
(00:20 UTC) ──► `compliance_report_daily` ──► `compliance_report`, one partition per UTC day.

A day's partition exists once the day has ended, so the schedule's tick at 00:20 UTC runs the day
that just ended. The figures are read from the app database (`lib/compliance/report.py`) and the
evaluations of the `sanitized_tweets_pii_free` check from this Dagster instance; the Markdown
and its chart are made by `lib/compliance/report_render.py`. Counts, durations and kinds only.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
    AssetCheckInstanceSupport,
)

from repazoo_assets.defs.resources import AppDatabase
from repazoo_assets.defs.twitter.assets import sanitized_tweets_pii_free
from repazoo_assets.lib.compliance import report, report_render

ASSET = "compliance_report"
PII_CHECK_KEY = next(iter(sanitized_tweets_pii_free.check_keys))
# Check rows are read newest first; a row created this long before the day cannot hold one of
# its evaluations unless its run spanned more than that.
CHECK_LOOKBACK = timedelta(days=1)
CHECK_PAGE = 1000

compliance_report_partitions = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


def pii_check_evaluations(instance: dg.DagsterInstance, day: date) -> report.CheckFigures | None:
    """Passed and failed evaluations of `sanitized_tweets_pii_free` (all user partitions) that
    finished on the UTC day, one per user checked (a batch's run also records one verdict for the
    whole batch, with no partition: not counted); None when the instance's storage keeps no asset
    check history."""
    if instance.get_asset_check_support() != AssetCheckInstanceSupport.SUPPORTED:
        return None
    storage = instance.event_log_storage
    stop_before = (report.day_bounds(day)[0] - CHECK_LOOKBACK).timestamp()
    passed = AssetCheckExecutionRecordStatus.SUCCEEDED
    done = (passed, AssetCheckExecutionRecordStatus.FAILED)
    evaluations, cursor = [], None
    while True:
        page = storage.get_asset_check_execution_history(
            PII_CHECK_KEY, limit=CHECK_PAGE, cursor=cursor, status=set(done)
        )
        for record in page:
            if record.partition is None:  # a batch's gate verdict: its users' own verdicts are counted
                continue
            finished = record.event.timestamp if record.event else record.create_timestamp
            evaluations.append((datetime.fromtimestamp(finished, UTC), record.status == passed))
        if len(page) < CHECK_PAGE or page[-1].create_timestamp < stop_before:
            return report.check_figures(evaluations, day)
        cursor = page[-1].id


@dg.asset(
    name=ASSET,
    group_name="compliance",
    partitions_def=compliance_report_partitions,
    kinds={"python", "postgres"},
    owners=["team:data-platform"],
    description=(
        "For one UTC day: data exports served and their latency, erasures, retention deletions per "
        "rule, PII redactions and check results, alerts by check, consent changes. Markdown with a "
        "chart, and the headline figures as plain values to plot across days. Counts only."
    ),
)
def compliance_report(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    day = context.partition_time_window.start.astimezone(UTC).date()
    figures = report.gather(app_db.engine, day, pii_check=pii_check_evaluations(context.instance, day))
    values = figures.figures()
    context.log.info(
        f"compliance report {day.isoformat()}: {figures.events} events; {values['exports_served']} exports "
        f"served, {values['erasures']} erasures, {values['retention_deleted']} retention deletions, "
        f"{values['alerts']} alerts"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": figures.events,
            **{name: dg.MetadataValue.null() if value is None else value for name, value in values.items()},
            "report": dg.MetadataValue.md(report_render.render_markdown(figures)),
        }
    )


compliance_report_daily = dg.define_asset_job(
    "compliance_report_daily",
    selection=dg.AssetSelection.assets(compliance_report),
    description="Build the compliance report of one UTC day (counts only) for operators and auditors.",
)

compliance_report_daily_schedule = dg.build_schedule_from_partitioned_job(
    compliance_report_daily,
    name="compliance_report_daily_schedule",
    hour_of_day=0,
    minute_of_hour=20,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:20 UTC, the compliance report of the day that just ended.",
)
