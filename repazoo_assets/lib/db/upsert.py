"""Idempotent writes: INSERT … ON CONFLICT on both PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def _insert_for(conn: sa.Connection, table: sa.Table):
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is not implemented for {conn.dialect.name}")


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Iterable[str],
    update: Iterable[str] | None = None,
) -> int:
    """Insert rows; on a conflict on `key` update the `update` columns (None: all non-key
    columns given; empty: leave the existing row alone). Returns how many rows were sent."""
    if not rows:
        return 0
    key = list(key)
    stmt = _insert_for(conn, table)
    columns = update if update is not None else [c for c in rows[0] if c not in key]
    columns = list(columns)
    if columns:
        stmt = stmt.on_conflict_do_update(index_elements=key, set_={c: stmt.excluded[c] for c in columns})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=key)
    conn.execute(stmt, list(rows))
    return len(rows)
