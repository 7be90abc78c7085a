"""The `repazoo` command: migrations, demo, keys, health check and its one-line errors."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet

from repazoo_assets.cli import main
from repazoo_assets.lib.db import head_revision
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED

import pytest


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return tmp_path / "data"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("repazoo: error: ")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


def test_every_command_has_help():
    def walk(group, path):
        for name, command in group.commands.items():
            result = run(*path, name, "--help")
            assert result.exit_code == 0, (path, name, result.output)
            assert "Usage:" in result.output and command.get_short_help_str()
            if hasattr(command, "commands"):
                walk(command, [*path, name])

    walk(main, [])


def test_db_upgrade_twice_is_a_no_op_the_second_time(local_env):
    first = run("db", "upgrade")
    assert first.exit_code == 0
    assert f"upgraded empty -> {head_revision()}" in first.output
    second = run("db", "upgrade")
    assert second.exit_code == 0
    assert f"already at {head_revision()}, nothing to do" in second.output
    assert (local_env / "app.db").exists()


def test_db_upgrade_on_postgres(local_env, pg_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert run("db", "upgrade").exit_code == 0
    result = run("db", "current")
    assert result.output.strip() == f"{head_revision()}: up to date"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REPAZOO_ENV": "staging"}, "repazoo: error: REPAZOO_ENV: unknown environment 'staging'"),
        ({"DATABASE_URL": "not a url"}, "repazoo: error: DATABASE_URL: is not a database URL"),
        (
            {"DATABASE_URL": "postgresql://root:pw-never-shown@127.0.0.1:1/test"},
            "repazoo: error: DATABASE_URL: cannot connect to postgresql+psycopg://root:***@127.0.0.1:1/test",
        ),
        ({"REPAZOO_ENV": "production"}, "repazoo: error: DATABASE_URL, REDIS_URL,"),
    ],
)
def test_bad_settings_end_in_one_clear_line(local_env, monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line.startswith(expected), line
    assert "pw-never-shown" not in result.output


def test_check_names_an_unreachable_object_store(local_env, monkeypatch, pg_url):
    env = {name: "x" for name in PRODUCTION_REQUIRED}
    env.update(
        REPAZOO_ENV="production",
        DATABASE_URL=pg_url,
        REDIS_URL="redis://127.0.0.1:6379/15",
        S3_ENDPOINT_URL="http://127.0.0.1:1",
        RAW_S3_BUCKET="raw-bucket",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run("db", "upgrade").exit_code == 0
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2
    assert "database             ok" in result.output
    assert "rate_limit_storage   ok" in result.output
    assert "object_store         FAILED" in result.output
    assert _one_error_line(result).startswith("repazoo: error: S3_ENDPOINT_URL / RAW_S3_BUCKET: health probe failed")


def test_check_passes_locally(local_env):
    run("db", "upgrade")
    result = run("check")
    assert result.exit_code == 0, result.output
    states = [line.split()[1] for line in result.output.splitlines()]
    assert states == ["ok", "ok", "ok"], result.output


def test_keys_generate_prints_a_fresh_valid_key():
    first, second = run("keys", "generate").output.strip(), run("keys", "generate").output.strip()
    assert first != second
    token = Fernet(first.encode()).encrypt(b"probe")
    assert Fernet(first.encode()).decrypt(token) == b"probe"


def test_demo_loads_data_materializes_and_is_idempotent(local_env):
    result = run("demo", "--users", "3", "--events", "300")
    assert result.exit_code == 0, result.output
    assert "3 users, 3 new clients, 300 events loaded; 3 tweet archives" in result.output
    assert "platform_health: materialized" in result.output
    assert len(list((local_env / "archives").glob("*/tweets.js"))) == 3
    assert "ready, user-exports/" in result.output and "link valid until" in result.output
    assert "(consent revoked):" in result.output and ", partition removed" in result.output
    assert ": passed" in result.output.split("(consent revoked):")[1].splitlines()[2]
    assert "monitoring checks (platform_health):" in result.output

    again = run("demo", "--users", "3", "--events", "300")
    assert again.exit_code == 0, again.output
    assert "3 users, 0 new clients, 0 events loaded" in again.output
    assert "raw_events: materialized (row_count " in result.output
    engine = sa.create_engine(f"sqlite:///{local_env / 'app.db'}")
    with engine.connect() as conn:
        # Every event is either still in events_log or exported once (and then cleaned up).
        remaining = conn.execute(sa.select(sa.func.count()).select_from(t.events_log)).scalar_one()
        exported = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.raw_batches.c.row_count + t.raw_batches.c.bad_count), 0))
        ).scalar_one()
        cleaned = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.raw_batches.c.row_count + t.raw_batches.c.bad_count), 0))
            .where(t.raw_batches.c.cleaned_at.is_not(None))
        ).scalar_one()
        assert exported == 300 and remaining + cleaned == 300
        assert conn.execute(sa.select(sa.func.count()).select_from(t.subscriptions)).scalar_one() == 2  # the demo erases one user


def test_demo_refuses_production(local_env, monkeypatch):
    for name in PRODUCTION_REQUIRED:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
    monkeypatch.setenv("REPAZOO_ENV", "production")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2
    assert "runs only with REPAZOO_ENV=local" in _one_error_line(result)
