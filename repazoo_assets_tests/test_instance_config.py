"""The instance configs load, and in production Dagster's Alembic history stays out of the app's."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.instance.config import dagster_instance_config

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db.migrate import VERSION_TABLE

ROOT = Path(__file__).resolve().parents[1]


def test_local_instance_config_is_valid(tmp_path):
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"


def test_production_instance_uses_postgres_in_its_own_schema(tmp_path, pg_schema_factory, monkeypatch):
    app_url = pg_schema_factory()
    dagster_url = pg_schema_factory().replace("postgresql+psycopg://", "postgresql+psycopg2://")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url)
    (tmp_path / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())

    app = create_engine(app_url)
    upgrade(app)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs_count() == 0

    app_tables = set(sa.inspect(app).get_table_names())
    dagster_tables = set(sa.inspect(create_engine(dagster_url.replace("+psycopg2", "+psycopg"))).get_table_names())
    assert VERSION_TABLE in app_tables and "alembic_version" not in app_tables
    assert "runs" in dagster_tables and "event_logs" in dagster_tables
    assert not app_tables & dagster_tables
