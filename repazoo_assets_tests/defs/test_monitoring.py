"""The monitoring job, its schedule and the run-failure sensor on the real PostgreSQL and Redis,
with local servers standing in for Slack's webhook and Sentry's ingest endpoint."""

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from repazoo_assets.defs.monitoring.assets import platform_health
from repazoo_assets.defs.monitoring.checks import CHECK_DESCRIPTIONS, monitoring_checks
from repazoo_assets.defs.monitoring.jobs import monitoring_job
from repazoo_assets.defs.monitoring.schedules import monitoring_every_5_minutes
from repazoo_assets.defs.monitoring.sensors import run_failure_alerts
from repazoo_assets.defs.resources import AppDatabase, LocalObjectStoreResource, RateLimitResource, SlackResource
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.monitoring import sentry as sentry_lib
from repazoo_assets_tests.conftest import free_port
from repazoo_assets_tests.lib.monitoring.servers import RecordingServer

REDIS = "redis://127.0.0.1:6379/0"
NOW = datetime(2026, 11, 24, 12, 7, 30, tzinfo=UTC)
EMAIL, PHONE = "jane.doe@gmail.com", "+44 20 7946 0958"


@pytest.fixture
def webhook():
    with RecordingServer() as server:
        yield server


@pytest.fixture
def ingest(monkeypatch):
    with RecordingServer() as server:
        dsn = f"http://public@127.0.0.1:{server.port}/1"
        monkeypatch.setenv("SENTRY_DSN", dsn)
        yield server
        sentry_lib._reporters.pop(dsn, None)


@pytest.fixture
def env(pg_url, tmp_path, webhook, monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    engine = create_engine(pg_url)
    upgrade(engine)

    class Env:
        pass

    e = Env()
    e.engine, e.webhook, e.instance = engine, webhook, dg.DagsterInstance.ephemeral()
    e.resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": LocalObjectStoreResource(
            root=str(tmp_path / "objects"), raw_bucket="raw", processed_bucket="proc", exports_bucket="exp"
        ),
        # A prefix of this test's own: limits' keys and the breaker's state stay apart from others'.
        "rate_limits": RateLimitResource(storage_uri=REDIS, key_prefix=f"test-{uuid.uuid4().hex}"),
        "slack": SlackResource(webhook_url=webhook.url + "/services/T/B/X"),
    }
    yield e
    engine.dispose()


def run_monitoring(env, at, **config):
    defs = dg.Definitions(
        assets=[platform_health], asset_checks=[monitoring_checks], jobs=[monitoring_job], resources=env.resources
    )
    return defs.resolve_job_def("monitoring").execute_in_process(
        run_config={"ops": {"monitoring_checks": {"config": {"evaluated_at": at.isoformat(), **config}}}},
        instance=env.instance,
    )


def evaluations(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def add_usage(env, operation, count, at):
    with env.engine.begin() as conn:
        conn.execute(sa.insert(t.api_usage), [{"provider": "twitter", "operation": operation, "created_at": at}] * count)


def alert_rows(env):
    with env.engine.connect() as conn:
        return conn.execute(sa.select(t.alerts).order_by(t.alerts.c.id)).all()


def test_monitoring_job_checks_platform_health_and_alerts_once_per_window(env):
    add_usage(env, "rate_limited", 10, NOW - timedelta(minutes=30))
    add_usage(env, "rate_limited", 1, NOW - timedelta(minutes=10))
    add_usage(env, "rate_limited", 3, NOW - timedelta(hours=1))  # just outside the hour
    add_usage(env, "token_refresh_failed", 3, NOW - timedelta(hours=23))  # at the limit: passes

    first = run_monitoring(env, NOW)
    assert first.success
    checks = evaluations(first)
    assert set(checks) == set(CHECK_DESCRIPTIONS)
    assert all(c.asset_key == dg.AssetKey("platform_health") for c in checks.values())
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {"rate_limit_violations"}
    rate = checks["rate_limit_violations"]
    assert rate.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in rate.metadata.items()}
    assert (meta["value"], meta["threshold"], meta["window"]) == (11.0, 10.0, "1 h")
    assert meta["alert"] == "new, Slack sent"
    assert checks["token_refresh_failures"].severity == dg.AssetCheckSeverity.ERROR
    assert checks["token_refresh_failures"].metadata["value"].value == 3.0
    assert env.webhook.texts() == [
        "[WARN] rate_limit_violations: 11 rate_limited events in the last 1 h (over the limit of 10) "
        "(value 11, threshold 10, window 2026-11-24T12:00Z)"
    ]

    # Five minutes later, same hour: the check still fails, no second alert, no second post.
    second = run_monitoring(env, NOW + timedelta(minutes=5))
    assert not evaluations(second)["rate_limit_violations"].passed
    assert evaluations(second)["rate_limit_violations"].metadata["alert"].value == "already raised in this window"
    assert len(alert_rows(env)) == 1 and env.webhook.count == 1

    # The next hour, still over the limit: a second alert.
    add_usage(env, "rate_limited", 12, NOW + timedelta(minutes=50))
    run_monitoring(env, NOW + timedelta(hours=1))
    rows = alert_rows(env)
    assert [r.dedup_key for r in rows] == [
        "rate_limit_violations:2026-11-24T12:00Z", "rate_limit_violations:2026-11-24T13:00Z",
    ]
    assert rows[0].notified_at is not None and env.webhook.count == 2


def test_slack_down_never_fails_the_monitoring_run(env):
    env.webhook.status = 500
    add_usage(env, "quota_exceeded", 6, NOW - timedelta(hours=1))
    result = run_monitoring(env, NOW, slack_timeout_seconds=1.0)
    assert result.success
    check = evaluations(result)["quota_exceeded_attempts"]
    assert not check.passed and check.metadata["alert"].value == "new, Slack failed"
    [row] = alert_rows(env)
    assert row.check_name == "quota_exceeded_attempts" and row.notified_at is None


def test_unreachable_redis_fails_the_redis_health_check_with_error_severity(env):
    env.resources["rate_limits"] = RateLimitResource(storage_uri=f"redis://127.0.0.1:{free_port()}/0", key_prefix="x")
    result = run_monitoring(env, NOW)
    assert result.success
    check = evaluations(result)["rate_limit_storage_health"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert [r.check_name for r in alert_rows(env)] == ["rate_limit_storage_health"]
    assert env.webhook.texts()[0].startswith("[ERROR] rate_limit_storage_health: rate_limit_storage: FAILED")


def test_db_queries_check_takes_its_delta_between_runs(env):
    first = evaluations(run_monitoring(env, NOW - timedelta(minutes=5)))["database_queries"]
    assert first.passed and first.metadata["measured"].value is False
    second = evaluations(run_monitoring(env, NOW))["database_queries"]
    assert second.metadata["measured"].value is True and second.metadata["window"].value == "5 min"
    assert second.metadata["value"].value > 0


def test_monitoring_alerts_reach_sentry_without_personal_data(env, ingest):
    add_usage(env, "token_refresh_failed", 4, NOW - timedelta(hours=2))
    assert run_monitoring(env, NOW).success
    [event] = ingest.sentry_events()
    assert event["tags"]["check_name"] == "token_refresh_failures" and event["level"] == "error"
    assert "4 token_refresh_failed events" in event["message"]


def test_schedule_runs_the_monitoring_job_every_5_minutes_at_its_tick():
    assert monitoring_every_5_minutes.cron_schedule == "*/5 * * * *"
    assert monitoring_every_5_minutes.execution_timezone == "UTC"
    assert monitoring_every_5_minutes.job_name == "monitoring"
    tick = datetime(2026, 11, 24, 12, 5, tzinfo=UTC)
    request = monitoring_every_5_minutes(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.run_key == tick.isoformat()
    assert request.run_config == {"ops": {"monitoring_checks": {"config": {"evaluated_at": tick.isoformat()}}}}


def test_schedule_run_config_is_valid_for_the_job(env):
    tick = datetime(2026, 11, 24, 12, 5, tzinfo=UTC)
    request = monitoring_every_5_minutes(dg.build_schedule_context(scheduled_execution_time=tick))
    defs = dg.Definitions(
        asset_checks=[monitoring_checks], jobs=[monitoring_job], schedules=[monitoring_every_5_minutes],
        resources=env.resources,
    )
    result = defs.resolve_job_def("monitoring").execute_in_process(run_config=request.run_config, instance=env.instance)
    assert result.success
    assert evaluations(result)["database_health"].metadata["window_key"].value == "2026-11-24T12:00Z"


# --- run failures ----------------------------------------------------------------------------------
users = dg.StaticPartitionsDefinition(["user-7"])


@dg.asset(partitions_def=users)
def leaky_tweets() -> None:
    raise ValueError(f"token for {EMAIL} ({PHONE}) was rejected")


def failed_run(env):
    result = dg.materialize([leaky_tweets], partition_key="user-7", instance=env.instance, raise_on_error=False)
    assert not result.success
    return result


def sensor_context(env, result):
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=env.instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={k: env.resources[k] for k in ("app_db", "slack", "rate_limits")},
    )


def test_run_failure_sensor_records_and_posts_an_alert_without_personal_data(env, ingest):
    result = failed_run(env)
    run_id, job = result.dagster_run.run_id, result.dagster_run.job_name
    for _ in range(2):  # the same run seen twice: one alert
        with sensor_context(env, result) as context:
            run_failure_alerts(context)

    [row] = alert_rows(env)
    assert row.check_name == "run_failure" and row.severity == "error"
    assert row.dedup_key == f"run_failure:{run_id}"
    assert row.message == f"run {run_id[:8]} of job {job} failed; partition user-7; error ValueError; steps leaky_tweets"
    [post] = env.webhook.texts()
    assert post.startswith(f"[ERROR] run_failure: run {run_id[:8]} of job {job} failed; partition user-7")
    [event] = ingest.sentry_events()
    assert event["tags"]["error_class"] == "ValueError" and event["tags"]["partition"] == "user-7"
    assert event["extra"]["run_id"] == run_id
    for sent in (row.message, post, str(event)):
        assert EMAIL not in sent and "7946" not in sent and "rejected" not in sent


def test_run_failure_sensor_without_sentry_or_slack_still_records_the_alert(env):
    env.resources["slack"] = SlackResource()
    result = failed_run(env)
    with sensor_context(env, result) as context:
        run_failure_alerts(context)
    assert [r.check_name for r in alert_rows(env)] == ["run_failure"]
    assert env.webhook.count == 0


def test_the_sensor_and_schedule_are_on_by_default():
    assert run_failure_alerts.default_status == dg.DefaultSensorStatus.RUNNING
    assert monitoring_every_5_minutes.default_status == dg.DefaultScheduleStatus.RUNNING
