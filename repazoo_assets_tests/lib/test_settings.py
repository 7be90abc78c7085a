"""Environment selection and the checks on settings."""

from __future__ import annotations

import pytest

from repazoo_assets.lib.settings import (
    PRODUCTION_REQUIRED,
    SettingsError,
    current_env,
    load_settings,
    missing_production_settings,
)


def production_env(**overrides: str) -> dict[str, str]:
    env = {name: f"value-of-{name.lower()}" for name in PRODUCTION_REQUIRED}
    env.update(REPAZOO_ENV="production", DATABASE_URL="postgresql://app@db.internal:5432/repazoo")
    env.update(REDIS_URL="redis://cache.internal:6379/0")
    env.update(overrides)
    return env


def test_local_is_the_default_and_needs_nothing(tmp_path):
    settings = load_settings({"REPAZOO_DATA_DIR": str(tmp_path)})
    assert settings.env == "local"
    assert settings.database_url == f"sqlite:///{tmp_path / 'app.db'}"
    assert settings.objects_dir == tmp_path / "objects"
    assert settings.buckets.raw == "repazoo-raw"


def test_unknown_environment_is_named():
    with pytest.raises(SettingsError, match="REPAZOO_ENV: unknown environment 'staging'"):
        current_env({"REPAZOO_ENV": "staging"})


def test_production_reads_everything_from_the_environment():
    settings = load_settings(production_env(RAW_S3_BUCKET="raw-b"))
    assert settings.is_production
    # psycopg 3 is pinned for the app database whatever scheme the provider hands out.
    assert settings.database_url == "postgresql+psycopg://app@db.internal:5432/repazoo"
    assert settings.buckets.raw == "raw-b"
    assert settings.redis_url == "redis://cache.internal:6379/0"


@pytest.mark.parametrize("name", PRODUCTION_REQUIRED)
def test_each_missing_production_variable_is_named(name):
    env = production_env()
    del env[name]
    assert missing_production_settings(env) == [name]
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert str(err.value) == f"{name}: required when REPAZOO_ENV=production but not set"


def test_blank_variable_counts_as_missing():
    assert missing_production_settings(production_env(ENCRYPTION_KEY="  ")) == ["ENCRYPTION_KEY"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql://u@h:5432/", "names no database"),
    ],
)
def test_malformed_database_url_is_named(url, problem):
    with pytest.raises(SettingsError) as err:
        load_settings(production_env(DATABASE_URL=url))
    assert str(err.value).startswith("DATABASE_URL: ")
    assert problem in str(err.value)


def test_secret_values_never_appear_in_errors():
    env = production_env(DATABASE_URL="postgresql://u:s3cr3t-pw@h:5432/")
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert "s3cr3t-pw" not in str(err.value)
