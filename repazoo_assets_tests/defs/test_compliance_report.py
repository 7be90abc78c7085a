"""The compliance report's wiring on the real PostgreSQL: one day's partition materialized with
its figures as plain metadata and the Markdown report, evaluations of the PII check read from
the Dagster instance for that day only, and the schedule asking for the day that just ended."""

import base64
import re
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import DagsterEvent, DagsterEventType

from repazoo_assets.defs.compliance import report as report_defs
from repazoo_assets.defs.compliance.report import (
    PII_CHECK_KEY,
    compliance_report,
    compliance_report_daily,
    compliance_report_daily_schedule,
    compliance_report_partitions,
    pii_check_evaluations,
)
from repazoo_assets.defs.resources import AppDatabase
from repazoo_assets.lib.db import tables as t

START = datetime(2026, 11, 20, tzinfo=UTC)
NEXT = START + timedelta(days=1)
EMAIL = "omar.k@example.com"
USER_ID = "usr-omar-5512"


def check_evaluation(instance: dg.DagsterInstance, passed: bool, when: datetime, partition: str | None) -> None:
    """An evaluation of `sanitized_tweets_pii_free` stored with its own time, as a run records it."""
    evaluation = dg.AssetCheckEvaluation(
        asset_key=PII_CHECK_KEY.asset_key, check_name=PII_CHECK_KEY.name, passed=passed, partition=partition
    )
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value, event_specific_data=evaluation,
            job_name="",
        ),
        run_id="",
        timestamp=when.timestamp(),
    )


def seed(engine, instance):
    with engine.begin() as conn:
        for requested, completed, status in (
            (START + timedelta(hours=9), START + timedelta(hours=9, seconds=40), "ready"),
            (START + timedelta(hours=10), START + timedelta(hours=10, seconds=80), "ready"),
            (START + timedelta(hours=11), START + timedelta(hours=11, seconds=5), "failed"),
            (NEXT, NEXT + timedelta(seconds=10), "ready"),  # the next day
        ):
            conn.execute(
                sa.insert(t.data_exports).values(
                    user_id=USER_ID, status=status, requested_at=requested, completed_at=completed
                )
            )
        for i, when in enumerate((START + timedelta(hours=2), START - timedelta(seconds=1))):
            conn.execute(
                sa.insert(t.alerts).values(
                    check_name="run_failure", severity="error",
                    message=f"run of {USER_ID} for {EMAIL} failed",
                    dedup_key=f"run_failure:{i}", created_at=when,
                )
            )
    # One evaluation per user partition and run, as the tweet pipeline makes them.
    for i, (passed, when) in enumerate((
        (True, START + timedelta(hours=1)),
        (True, START + timedelta(hours=20)),
        (False, START + timedelta(hours=21)),
        (False, START - timedelta(minutes=1)),  # the day before
        (True, NEXT),  # the day after
    )):
        check_evaluation(instance, passed, when, partition=f"{USER_ID}-{i}")


def test_materializes_one_day(engine, pg_url):
    instance = dg.DagsterInstance.ephemeral()
    seed(engine, instance)
    result = dg.materialize(
        [compliance_report], partition_key="2026-11-20", instance=instance,
        resources={"app_db": AppDatabase(url=pg_url)},
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.partition == "2026-11-20"
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    # 3 exports completed + 3 check evaluations + 1 alert
    assert meta["dagster/row_count"] == 7
    assert meta["exports_served"] == 2 and meta["exports_failed"] == 1
    assert meta["export_latency_p50_seconds"] == 60.0
    assert meta["export_latency_p95_seconds"] == 78.0
    assert meta["export_latency_max_seconds"] == 80.0
    assert meta["pii_check_passed"] == 2 and meta["pii_check_failed"] == 1
    assert meta["alerts"] == 1
    assert meta["erasures"] == 0 and meta["retention_deleted"] == 0
    markdown = meta["report"]
    assert markdown.startswith("# Compliance report, 2026-11-20 (UTC)")
    assert "**2 passed**, **1 failed**" in markdown
    svg = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", markdown).group(1)).decode()
    everything = " ".join([markdown, svg, *(str(v) for v in meta.values())])
    for personal in (USER_ID, EMAIL):
        assert personal not in everything


def test_pii_check_evaluations_of_one_day(engine):
    instance = dg.DagsterInstance.ephemeral()
    seed(engine, instance)
    # A check of another asset, on the day, is not counted.
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=dg.AssetKey("tweets"), check_name=PII_CHECK_KEY.name, passed=False)
    )
    # Nor a batch's verdict for all its users (no partition): its users' own verdicts are.
    check_evaluation(instance, False, START + timedelta(hours=12), partition=None)
    figures = pii_check_evaluations(instance, date(2026, 11, 20))
    assert (figures.passed, figures.failed) == (2, 1)
    assert pii_check_evaluations(instance, date(2026, 11, 19)).failed == 1
    assert pii_check_evaluations(instance, date(2026, 11, 21)).passed == 1
    assert pii_check_evaluations(instance, date(2026, 11, 12)).evaluations == 0


def test_pii_check_evaluations_read_page_by_page(engine, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    seed(engine, instance)
    monkeypatch.setattr(report_defs, "CHECK_PAGE", 2)  # five evaluations: three pages
    figures = pii_check_evaluations(instance, date(2026, 11, 20))
    assert (figures.passed, figures.failed) == (2, 1)


def test_schedule_runs_the_day_that_just_ended():
    defs = dg.Definitions(
        assets=[compliance_report],
        jobs=[compliance_report_daily],
        schedules=[compliance_report_daily_schedule],
        resources={"app_db": AppDatabase(url="sqlite://")},
    )
    schedule = defs.get_repository_def().get_schedule_def("compliance_report_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("20 0 * * *", "UTC")
    for tick, day in (
        (datetime(2026, 11, 21, 0, 20, tzinfo=UTC), "2026-11-20"),
        (datetime(2026, 12, 1, 0, 20, tzinfo=UTC), "2026-11-30"),
    ):
        with dg.build_schedule_context(scheduled_execution_time=tick) as context:
            [request] = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == day
    assert compliance_report_daily.description and "\n" not in compliance_report_daily.description
    # A day has a partition only once it has ended.
    just_after_midnight = datetime(2026, 11, 21, 0, 5, tzinfo=UTC)
    keys = compliance_report_partitions.get_partition_keys(current_time=just_after_midnight)
    assert keys[0] == "2026-11-01" and keys[-1] == "2026-11-20"
