"""Engines for the app database: SQLite locally, PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from repazoo_assets.lib.settings import SettingsError

_POSTGRES_ALIASES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}


def normalize_database_url(url: str, *, setting: str = "DATABASE_URL") -> str:
    """Check a database URL and pin PostgreSQL to psycopg 3.

    `postgres://` and `postgresql://` (what hosting providers hand out) become
    `postgresql+psycopg://`; psycopg2 is left to Dagster's own storage.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise SettingsError(setting, "is not a database URL (expected postgresql://user@host:port/db or sqlite:///path)") from None
    if parsed.drivername in _POSTGRES_ALIASES:
        if not parsed.database:
            raise SettingsError(setting, "names no database (expected postgresql://user@host:port/db)")
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise SettingsError(setting, f"unsupported database {parsed.drivername!r}; use PostgreSQL or SQLite")
    return parsed.render_as_string(hide_password=False)


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets the UI read while a run writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine(url: str, **kwargs) -> Engine:
    """An engine for the app database. SQLite files get their folder created and sane pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    return sa.create_engine(parsed, connect_args=connect_args, **kwargs)


def check_connection(engine: Engine, *, setting: str = "DATABASE_URL") -> None:
    """Raise SettingsError naming the setting when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise SettingsError(setting, f"cannot connect to {safe_url(engine.url)} ({reason})") from None
