"""App database fixtures for the monitoring tests: the real PostgreSQL, migrated."""

import pytest

from repazoo_assets.lib.db import create_engine, upgrade


@pytest.fixture
def engine(pg_url):
    eng = create_engine(pg_url)
    upgrade(eng)
    yield eng
    eng.dispose()
