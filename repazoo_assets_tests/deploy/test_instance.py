"""deploy/dagster.yaml and deploy/pools.yaml on a real PostgreSQL-backed Dagster instance."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = pytest.mark.postgres


@pytest.fixture
def dagster_home(tmp_path, pg_schema_factory, monkeypatch):
    """DAGSTER_HOME with the production dagster.yaml, its storage in a fresh schema."""
    url = pg_schema_factory().replace("postgresql+psycopg://", "postgresql+psycopg2://")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    return tmp_path


def test_storage_is_postgres_through_psycopg2(dagster_home):
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.event_log_storage._engine.dialect.driver == "psycopg2"  # noqa: SLF001
        run = instance.create_run_for_job(dg.GraphDefinition("probe").to_job())
        assert instance.get_run_by_id(run.run_id).job_name == "probe"


def test_run_queue_limits_keep_slots_for_the_event_export(dagster_home):
    from repazoo_assets.definitions import defs

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
    limits = {(limit["key"], limit.get("value")): limit["limit"] for limit in queue.tag_concurrency_limits}
    assert queue.max_concurrent_runs == 20
    backfills = limits[("dagster/backfill", None)]
    new_users = limits[("dagster/sensor_name", "users_sensor")]
    assert limits[("dagster/schedule_name", "raw_events_export_schedule")] == 1
    # Backfills and the new-user runs together can never take every slot from the export.
    assert queue.max_concurrent_runs - backfills - new_users >= 4
    # The limits name instigators that exist: a renamed sensor or schedule would void them.
    assert defs.resolve_sensor_def("users_sensor") is not None
    assert defs.resolve_schedule_def("raw_events_export_schedule") is not None


def test_retries_monitoring_and_tick_retention(dagster_home):
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled
        sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
    assert sensor[TickStatus.SKIPPED] == 1 and sensor[TickStatus.SUCCESS] == 7 and sensor[TickStatus.FAILURE] == 30
    assert schedule[TickStatus.SUCCESS] == 30


def test_pool_limits_are_applied_and_enforced(dagster_home):
    from repazoo_assets.definitions import defs

    wanted = yaml.safe_load((DEPLOY / "pools.yaml").read_text())
    graph = defs.resolve_asset_graph()
    used = {a.node_def.pool for a in graph.assets_defs if a.is_executable and a.node_def.pool}
    assert {"twitter_api", "anthropic_api"} <= used
    assert used <= set(wanted), f"pools without a limit in deploy/pools.yaml: {used - set(wanted)}"

    result = subprocess.run(
        [sys.executable, str(DEPLOY / "set_pool_limits.py"), str(DEPLOY / "pools.yaml")],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pool twitter_api: limit 8" in result.stdout

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        config = instance.get_concurrency_config().pool_config
        assert config.pool_granularity.value == "op" and config.default_pool_limit == 4
        storage = instance.event_log_storage
        for pool, limit in wanted.items():
            assert storage.get_concurrency_info(pool).slot_count == limit
        # raw_export admits one step: a second run's step waits until the first frees its slot.
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        assert storage.claim_concurrency_slot("raw_export", first, "raw_events").is_claimed
        assert not storage.claim_concurrency_slot("raw_export", second, "raw_events").is_claimed
        storage.free_concurrency_slot_for_step(first, "raw_events")
        assert storage.claim_concurrency_slot("raw_export", second, "raw_events").is_claimed
        storage.free_concurrency_slots_for_run(second)


def test_set_pool_limits_refuses_a_malformed_file(dagster_home, tmp_path):
    bad = tmp_path / "pools.yaml"
    bad.write_text("twitter_api: many\n")
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "set_pool_limits.py"), str(bad)],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "non-negative integer limits" in result.stderr
