"""Shared fixtures: real PostgreSQL (a fresh schema per test run) and moto's S3 server on loopback."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def _base_pg_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(scope="session")
def pg_schema_factory() -> Iterator[Callable[[], str]]:
    """Returns a function that creates a fresh schema and gives a database URL whose
    search_path points at it. Every schema made here is dropped at the end of the session,
    so test runs never see each other's tables."""
    admin = sa.create_engine(_base_pg_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"TEST_DATABASE_URL: PostgreSQL is not reachable ({exc.orig}); run `make test`")
    created: list[str] = []

    def make() -> str:
        schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'create schema "{schema}"'))
        created.append(schema)
        return _with_search_path(_base_pg_url(), schema)

    yield make
    with admin.connect() as conn:
        for schema in created:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_schema_factory: Callable[[], str]) -> str:
    """A database URL on the real PostgreSQL, in a schema of this test's own."""
    return pg_schema_factory()


@pytest.fixture
def engine(pg_url: str):
    """An engine on the real PostgreSQL, in a schema of this test's own, migrated to the head."""
    from repazoo_assets.lib.db import create_engine, upgrade

    eng = create_engine(pg_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def vault():
    """A token vault with a fresh Fernet key."""
    from cryptography.fernet import Fernet

    from repazoo_assets.lib.security.vault import TokenVault

    return TokenVault.from_keys(Fernet.generate_key().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in threaded server mode on a free loopback port (as dagster-aws tests do)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
