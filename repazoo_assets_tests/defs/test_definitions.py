"""The code location loads in each environment, and its health asset works on the real services."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import boto3
import dagster as dg
import pytest

from repazoo_assets.defs import resources as res
from repazoo_assets.defs.monitoring.assets import platform_health
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED, load_settings

EXPECTED_RESOURCES = {"app_db", "object_store", "rate_limits", "twitter", "anthropic", "slack", "token_vault", "pseudonymization"}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def test_code_location_loads():
    from repazoo_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("platform_health") in graph.get_all_asset_keys()
    assert set(defs.resources) >= EXPECTED_RESOURCES


def _load_in_subprocess(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import repazoo_assets.definitions"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_settings_fails_at_load_naming_them(clean_env):
    result = _load_in_subprocess({"REPAZOO_ENV": "production"})
    assert result.returncode != 0
    assert "DATABASE_URL, REDIS_URL, RAW_S3_BUCKET" in result.stderr
    assert "required when REPAZOO_ENV=production but not set" in result.stderr


def test_production_resources_read_secrets_through_env_vars(clean_env):
    for name in PRODUCTION_REQUIRED:
        clean_env.setenv(name, f"secret-{name}")
    clean_env.setenv("REPAZOO_ENV", "production")
    clean_env.setenv("DATABASE_URL", "postgresql://app:secret-pw@db.internal:5432/repazoo")
    built = res.resources_for_environment()
    assert set(built) == EXPECTED_RESOURCES
    assert isinstance(built["object_store"], res.S3ObjectStoreResource)
    # EnvVar, not the value: the secret never lands in config the UI shows.
    assert built["anthropic"].api_key == dg.EnvVar("ANTHROPIC_API_KEY")
    assert built["token_vault"].encryption_key == dg.EnvVar("ENCRYPTION_KEY")
    assert built["pseudonymization"].key == dg.EnvVar("PSEUDONYMIZATION_KEY")
    assert "secret-ANTHROPIC_API_KEY" not in repr(built) and "secret-pw" not in repr(built)


def test_production_with_a_malformed_database_url_fails_at_load(clean_env):
    env = {name: "x" for name in PRODUCTION_REQUIRED}
    result = _load_in_subprocess({**env, "REPAZOO_ENV": "production", "DATABASE_URL": "mysql://u@h/db"})
    assert result.returncode != 0
    assert "DATABASE_URL: unsupported database 'mysql'" in result.stderr


def test_local_resources_need_nothing(clean_env, tmp_path):
    built = res.resources_for_environment()
    assert isinstance(built["object_store"], res.LocalObjectStoreResource)
    assert built["rate_limits"].storage_uri == "memory://"
    assert built["anthropic"].api_key is None


def test_platform_health_locally(clean_env, tmp_path):
    settings = load_settings()
    upgrade(create_engine(settings.database_url))
    result = dg.materialize([platform_health], resources=res.local_resources(settings))
    assert result.success
    metadata = result.asset_materializations_for_node("platform_health")[0].metadata
    assert metadata["environment"].value == "local"
    assert "| users | 0 |" in metadata["app_table_rows"].value
    assert (tmp_path / "data" / "objects" / "repazoo-raw").is_dir()


def test_platform_health_on_postgres_s3_and_redis(clean_env, pg_url, s3_endpoint):
    buckets = {name: f"health-{name.lower()[:3]}-{uuid.uuid4().hex[:8]}" for name in ("RAW", "PROC", "EXP")}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    env = {name: "x" for name in PRODUCTION_REQUIRED}
    env.update(
        REPAZOO_ENV="production",
        DATABASE_URL=pg_url,
        REDIS_URL="redis://127.0.0.1:6379/15",
        S3_ENDPOINT_URL=s3_endpoint,
        RAW_S3_BUCKET=buckets["RAW"],
        PROCESSED_S3_BUCKET=buckets["PROC"],
        EXPORTS_S3_BUCKET=buckets["EXP"],
    )
    for name, value in env.items():
        clean_env.setenv(name, value)
    upgrade(create_engine(load_settings().database_url))
    result = dg.materialize([platform_health], resources=res.resources_for_environment())
    assert result.success
    metadata = result.asset_materializations_for_node("platform_health")[0].metadata
    assert metadata["environment"].value == "production"
    # The probe object was written, read back and removed.
    assert s3.list_objects_v2(Bucket=buckets["RAW"]).get("KeyCount", 0) == 0


def test_platform_health_fails_naming_the_unreachable_database(clean_env):
    clean_env.setenv("DATABASE_URL", "postgresql://root@127.0.0.1:1/test")
    result = dg.materialize(
        [platform_health], resources=res.resources_for_environment(), raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("database: OperationalError")
    assert "object_store" not in message  # the other probes still passed


@pytest.mark.parametrize(
    "command",
    [
        ["dagster", "definitions", "validate", "-m", "repazoo_assets.definitions"],
        ["dg", "check", "defs"],
    ],
)
def test_dagster_tools_load_the_code_location(clean_env, command, tmp_path):
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(bin_dir / command[0]), *command[1:]],
        cwd=root,
        # A fresh, empty instance directory: the tools must not depend on `make demo` having run.
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
