"""Append-only, hash-chained audit log.

Each row stores the SHA-256 of a canonical JSON of its own content plus the previous row's hash,
so editing a row breaks its own hash and deleting or inserting one breaks the next row's link.
`verify` walks the chain; `repazoo audit verify` runs it. Deleting the newest rows cannot be seen
from the chain alone; compare the row count or head hash with one recorded elsewhere for that.

Appends are serialized (a PostgreSQL advisory lock, SQLite's write lock) so that concurrent
writers never both link to the same previous row and fork the chain.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.db import tables as t

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number, the same in every process: the key of the append lock on PostgreSQL.
ADVISORY_LOCK_KEY = 0x7265_7061_7A6F_6F41  # "repazooA"


class AuditAction(enum.StrEnum):
    """What can be recorded. A closed set: a typo must fail, not open a new kind of entry."""

    FETCH = "fetch"
    REDACT = "redact"
    ANALYSE = "analyse"
    EXPORT = "export"
    DELIVER = "deliver"
    DELETE = "delete"
    ERASE = "erase"
    RETENTION_PURGE = "retention_purge"
    CONSENT_CHANGE = "consent_change"
    TOKEN_REFRESH = "token_refresh"
    TOKEN_REVOKE = "token_revoke"
    KEY_ROTATION = "key_rotation"
    CLIENT_CHANGE = "client_change"
    ACCESS = "access"


ACTIONS = frozenset(a.value for a in AuditAction)


class AuditError(ValueError):
    """Base of the audit log's errors."""


def _check_details(value: Any, path: str = "details") -> None:
    """JSON scalars, lists and string-keyed dicts only, so the hash is reproducible from the row."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditError(f"{path}: NaN and infinity are not JSON")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_details(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"{path}: keys must be strings")
            _check_details(item, f"{path}.{key}")
        return
    raise AuditError(f"{path}: {type(value).__name__} is not a JSON scalar, list or dict")


def _strings(value: Any, path: str = "details"):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")


def _reject_pii(details: Mapping[str, Any]) -> None:
    """The audit log outlives erasure, so it must hold no personal data. The message names where
    the PII is, never the PII itself."""
    strings = list(_strings(details))
    if not strings:
        return
    # Imported here: the detector is heavy and only needed when there is text to scan.
    from repazoo_assets.lib.privacy.pii import find_pii

    for path, text in strings:
        if find_pii(text):
            raise AuditError(f"{path} contains personal data; record an id or a count instead")


def _iso(moment: datetime) -> str:
    """One spelling of a timestamp whatever the backend gives back: SQLite returns it naive,
    PostgreSQL in the session's time zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(
    *, prev_hash: str, created_at: datetime, actor: str, action: str, subject_type: str,
    subject_id: str | None, details: Any,
) -> str:
    """SHA-256 hex of the canonical JSON of a row's content and the previous row's hash."""
    canonical = json.dumps(
        {
            "prev_hash": prev_hash,
            "created_at": _iso(created_at),
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_chain(conn: Connection) -> None:
    """Hold the append lock until this transaction ends, so the last row we read stays last."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        # pysqlite opens a transaction only before its first write (engine.py leaves that
        # default), so a transaction already open on this connection holds the write lock;
        # otherwise take it now, before reading, as BEGIN IMMEDIATE does.
        if not conn.connection.dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        raise NotImplementedError(f"audit log appends are not implemented for {conn.dialect.name}")


def append(
    conn_or_engine: Connection | Engine,
    *,
    actor: str,
    action: str | AuditAction,
    subject_type: str,
    subject_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> sa.Row:
    """Append one entry and return its row. Given a Connection, the entry joins that
    transaction (and holds the append lock until it ends); given an Engine, it commits at once."""
    action = str(action.value if isinstance(action, AuditAction) else action)
    if action not in ACTIONS:
        raise AuditError(f"unknown audit action {action!r}; use one of {', '.join(sorted(ACTIONS))}")
    details = dict(details or {})
    _check_details(details)
    _reject_pii(details)
    # Round-tripped through JSON: tuples become lists, as they will come back from the database.
    details = json.loads(json.dumps(details))
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            return _append(conn, actor, action, subject_type, subject_id, details)
    return _append(conn_or_engine, actor, action, subject_type, subject_id, details)


def _append(conn: Connection, actor, action, subject_type, subject_id, details) -> sa.Row:
    _lock_chain(conn)
    last = conn.execute(sa.select(t.audit_log.c.row_hash).order_by(t.audit_log.c.id.desc()).limit(1)).scalar()
    prev_hash = last or GENESIS_HASH
    # Set here, not by the server default: the hash covers it. Both backends keep microseconds.
    created_at = datetime.now(UTC)
    values = dict(
        created_at=created_at, actor=actor, action=action, subject_type=subject_type,
        subject_id=subject_id, details=details, prev_hash=prev_hash,
    )
    values["row_hash"] = row_hash(**values)
    return conn.execute(sa.insert(t.audit_log).values(**values).returning(*t.audit_log.c)).one()


def append_many(conn_or_engine: Connection | Engine, entries: Sequence[Mapping[str, Any]]) -> int:
    """Append several entries, in order, in one transaction: one row per entry, each validated and
    chained exactly as `append` would chain them one after the other, but with the append lock
    taken and the chain head read once, and one INSERT for all rows. Each entry holds the keyword
    arguments of `append` (actor, action, subject_type, subject_id, details). Returns the number
    of rows appended; nothing is appended if any entry is refused."""
    prepared = []
    for entry in entries:
        action = entry["action"]
        action = str(action.value if isinstance(action, AuditAction) else action)
        if action not in ACTIONS:
            raise AuditError(f"unknown audit action {action!r}; use one of {', '.join(sorted(ACTIONS))}")
        details = dict(entry.get("details") or {})
        _check_details(details)
        _reject_pii(details)
        prepared.append(
            dict(actor=entry["actor"], action=action, subject_type=entry["subject_type"],
                 subject_id=entry.get("subject_id"), details=json.loads(json.dumps(details)))
        )
    if not prepared:
        return 0
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            return _append_many(conn, prepared)
    return _append_many(conn_or_engine, prepared)


def _append_many(conn: Connection, prepared: list[dict]) -> int:
    _lock_chain(conn)
    last = conn.execute(sa.select(t.audit_log.c.row_hash).order_by(t.audit_log.c.id.desc()).limit(1)).scalar()
    prev_hash = last or GENESIS_HASH
    rows = []
    for values in prepared:
        values = dict(values, created_at=datetime.now(UTC), prev_hash=prev_hash)
        values["row_hash"] = prev_hash = row_hash(**values)
        rows.append(values)
    # One statement per row, in order, in this transaction: ids follow the chain order.
    conn.execute(sa.insert(t.audit_log), rows)
    return len(rows)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    broken_row_id: int | None = None
    reason: str | None = None
    head_hash: str = GENESIS_HASH

    def describe(self) -> str:
        if self.ok:
            return f"audit log: {self.rows_checked} rows checked, chain OK"
        return f"audit log: chain broken at row id {self.broken_row_id}: {self.reason}"


def verify(engine: Engine | Connection, *, batch_size: int = 1000) -> VerifyResult:
    """Walk the chain in id order, `batch_size` rows at a time, and report the first break."""
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return _verify(conn, batch_size)
    return _verify(engine, batch_size)


def _verify(conn: Connection, batch_size: int) -> VerifyResult:
    log = t.audit_log
    expected_prev, checked, last_id = GENESIS_HASH, 0, None
    while True:
        query = sa.select(log).order_by(log.c.id).limit(batch_size)
        if last_id is not None:
            query = query.where(log.c.id > last_id)
        rows = conn.execute(query).all()
        for row in rows:
            broken = _check_row(row, expected_prev)
            if broken:
                return VerifyResult(False, checked, row.id, broken, expected_prev)
            expected_prev, checked, last_id = row.row_hash, checked + 1, row.id
        if len(rows) < batch_size:
            return VerifyResult(True, checked, head_hash=expected_prev)


def _check_row(row: sa.Row, expected_prev: str) -> str | None:
    if row.prev_hash != expected_prev:
        return "prev_hash does not match the previous row's hash (a row was deleted or inserted before it)"
    recomputed = row_hash(
        prev_hash=row.prev_hash, created_at=row.created_at, actor=row.actor, action=row.action,
        subject_type=row.subject_type, subject_id=row.subject_id, details=row.details,
    )
    if recomputed != row.row_hash:
        return "row_hash does not match the row's content (the row was edited)"
    return None
