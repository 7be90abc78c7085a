"""Personal-data exports (GDPR Art. 15/20, CCPA right to know): one JSON document per request.

A request is a `data_exports` row (the `repazoo export request` command or the web app inserts it
as `pending`). Handling one: claim it (`running`), read everything the platform holds about the
user in one snapshot, stream it as JSON into the exports bucket at
`user-exports/<user_id>/<request_id>.json`, presign a GET link, and only then mark the row `ready`
with the link, its expiry and an audit entry, in one transaction. A crash anywhere before that
commit leaves the row `running` and at worst an object nobody has a link to; handling the request
again rewrites the same key. Statuses: pending -> running -> ready | failed (the retention job
later moves ready rows to `expired`).

OAuth rows are read column by column, never the encrypted token columns, so no token or ciphertext
can reach a document. Nothing here logs personal data; outcomes carry ids, counts and reasons.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.storage.base import ObjectStore, ObjectStoreError

SCHEMA_VERSION = 1
KEY_PREFIX = "user-exports"
DEFAULT_LINK_EXPIRY = timedelta(hours=24)
# SigV4 presigned URLs cannot live longer than 7 days.
MAX_LINK_EXPIRY = timedelta(days=7)
ACTOR = "pipeline:compliance"
# How many pending requests one run takes when it is not given request ids.
DEFAULT_PENDING_LIMIT = 100
# The document is spooled in memory up to this size, then on disk: memory stays flat per user.
SPOOL_BYTES = 16 * 1024 * 1024
_ROWS_PER_FETCH = 1000
_ERROR_CHARS = 500

UNKNOWN_USER_REASON = "unknown user: no account with this id (never registered, or already erased)"


def export_key(user_id: str, request_id: int) -> str:
    """Where a request's document lives. Fixed: erasure and retention delete by this layout."""
    return f"{KEY_PREFIX}/{user_id}/{request_id}.json"


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives timestamps back naive (they were stored as UTC); PostgreSQL in session time."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


# --- requests -----------------------------------------------------------------------------------
def request_export(conn: Connection, user_id: str, *, now: datetime | None = None) -> tuple[int, bool]:
    """Insert a pending request for `user_id`, unless one is already pending or running: returns
    (request id, whether it is new). The user is not checked here: a request for an unknown user
    is recorded and ends `failed` with the reason, like one the web app inserts."""
    if not user_id or not user_id.strip():
        raise ValueError("user id must be non-empty")
    e = t.data_exports
    open_request = conn.execute(
        sa.select(e.c.id)
        .where(e.c.user_id == user_id, e.c.status.in_(("pending", "running")))
        .order_by(e.c.id)
        .limit(1)
    ).scalar()
    if open_request is not None:
        return open_request, False
    new_id = conn.execute(
        sa.insert(e).values(user_id=user_id, status="pending", requested_at=now or _now()).returning(e.c.id)
    ).scalar_one()
    return new_id, True


def user_requests(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """The user's requests, newest first, with timestamps in UTC."""
    e = t.data_exports
    rows = conn.execute(
        sa.select(e).where(e.c.user_id == user_id).order_by(e.c.requested_at.desc(), e.c.id.desc())
    ).mappings()
    out = []
    for row in rows:
        item = dict(row)
        for column in ("requested_at", "started_at", "completed_at", "expires_at"):
            item[column] = _utc(item[column])
        out.append(item)
    return out


def link_if_valid(request: dict[str, Any], now: datetime | None = None) -> str | None:
    """The download link of a ready request whose link has not expired, else None."""
    now = now or _now()
    if request["status"] != "ready" or not request["download_url"] or request["expires_at"] is None:
        return None
    return request["download_url"] if _utc(request["expires_at"]) > now else None


def pending_request_ids(conn: Connection, *, limit: int) -> list[int]:
    """Oldest pending requests first: one query on the (status, requested_at) index."""
    e = t.data_exports
    return list(
        conn.execute(
            sa.select(e.c.id).where(e.c.status == "pending").order_by(e.c.requested_at, e.c.id).limit(limit)
        ).scalars()
    )


def _claim(conn: Connection, request_id: int, *, allow_running: bool, now: datetime) -> str | None:
    """pending (or, when re-doing a crashed run, running) -> running; the user id, or None when the
    request does not exist or is already finished."""
    e = t.data_exports
    claimable = ("pending", "running") if allow_running else ("pending",)
    claimed = conn.execute(
        sa.update(e)
        .where(e.c.id == request_id, e.c.status.in_(claimable))
        .values(status="running", started_at=now, error=None)
    ).rowcount
    if claimed != 1:
        return None
    return conn.execute(sa.select(e.c.user_id).where(e.c.id == request_id)).scalar_one()


# --- the document -------------------------------------------------------------------------------
# Tweet ids are 64-bit snowflakes: written as strings (like Twitter's own `id_str`), since JSON
# readers that use doubles would round them.
_TWEET_IDS = {("tweets", "id"), ("sanitized_tweets", "tweet_id"), ("analyses", "tweet_id")}


def _jsonable(table: sa.Table, row: sa.RowMapping) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = _utc(value)
        elif value is not None and (table.name, key) in _TWEET_IDS:
            value = str(value)
        out[key] = value
    return out


# OAuth authorizations: every column except the encrypted tokens, named one by one so a column
# added later is left out until someone decides it belongs in an export.
_OAUTH_COLUMNS = ("provider", "scopes", "created_at", "updated_at", "expires_at", "revoked", "revoked_at")


def _sections(user_id: str) -> list[tuple[str, sa.Table, sa.Select]]:
    o, s, tw, st, a, c, al, u = (
        t.oauth_tokens, t.subscriptions, t.tweets, t.sanitized_tweets, t.analyses, t.consent_audit_log,
        t.audit_log, t.api_usage,
    )
    return [
        ("oauth_authorizations", o,
         sa.select(*(o.c[name] for name in _OAUTH_COLUMNS)).where(o.c.user_id == user_id).order_by(o.c.created_at, o.c.id)),
        ("subscriptions", s, sa.select(s).where(s.c.user_id == user_id).order_by(s.c.started_at, s.c.id)),
        ("tweets", tw, sa.select(tw).where(tw.c.user_id == user_id).order_by(tw.c.id)),
        ("sanitized_tweets", st, sa.select(st).where(st.c.user_id == user_id).order_by(st.c.tweet_id)),
        ("analyses", a, sa.select(a).where(a.c.user_id == user_id).order_by(a.c.id)),
        ("consent_history", c, sa.select(c).where(c.c.user_id == user_id).order_by(c.c.created_at, c.c.id)),
        # subject_type too: client ids live in another namespace and must never match a user's.
        # The hash-chain columns are integrity plumbing, not data about the user.
        ("audit_log", al,
         sa.select(al.c.id, al.c.created_at, al.c.actor, al.c.action, al.c.subject_type, al.c.subject_id, al.c.details)
         .where(al.c.subject_type == "user", al.c.subject_id == user_id).order_by(al.c.id)),
        ("api_usage", u, sa.select(u).where(u.c.user_id == user_id).order_by(u.c.id)),
    ]


SECTIONS = ("profile",) + tuple(name for name, _, _ in _sections("x"))


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def write_document(
    conn: Connection, user_id: str, request: dict[str, Any], out: BinaryIO, *, generated_at: datetime
) -> dict[str, int] | None:
    """Write the user's export document to `out`; the row count of each section, or None when the
    user does not exist. Rows are fetched in batches and written one per line, so the document's
    size, not the memory, grows with the user's history."""
    profile = conn.execute(sa.select(t.users).where(t.users.c.id == user_id)).mappings().first()
    if profile is None:
        return None
    head = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at,
        "user_id": user_id,
        "request": {"id": request["id"], "requested_at": _utc(request["requested_at"])},
        "profile": _jsonable(t.users, profile),
    }
    out.write(_dump(head)[:-1])  # the object stays open: the sections follow
    counts = {"profile": 1}
    for name, table, query in _sections(user_id):
        out.write(b',\n' + _dump(name) + b':[')
        n = 0
        for row in conn.execution_options(yield_per=_ROWS_PER_FETCH).execute(query).mappings():
            out.write((b',\n' if n else b'\n') + _dump(_jsonable(table, row)))
            n += 1
        out.write(b']')
        counts[name] = n
    out.write(b',\n"counts":' + _dump(counts) + b'}\n')
    return counts


# --- handling requests --------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOutcome:
    request_id: int
    status: str  # ready | failed | skipped (not found, or already finished)
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    object_key: str | None = None
    sections: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportReport:
    outcomes: tuple[ExportOutcome, ...]

    def ids(self, status: str) -> list[int]:
        return [o.request_id for o in self.outcomes if o.status == status]

    @property
    def bytes_written(self) -> int:
        return sum(o.bytes for o in self.outcomes)

    @property
    def unexpected_failures(self) -> list[ExportOutcome]:
        """Failures other than an unknown user: the platform's fault, worth a failed run."""
        return [o for o in self.outcomes if o.status == "failed" and o.error != UNKNOWN_USER_REASON]


def _reason(exc: BaseException) -> str:
    """A failure reason for the request row: no personal data, no credentials. Object store
    errors name the bucket and the S3 code; database errors only their kind (their text quotes
    SQL and parameters)."""
    if isinstance(exc, ObjectStoreError):
        text = f"object store: {exc}"
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        text = f"database error ({type(orig or exc).__name__}); see the run's logs"
    else:
        text = f"internal error ({type(exc).__name__}); see the run's logs"
    return text[:_ERROR_CHARS]


def _snapshot(engine: Engine):
    """One consistent view of every section, however long the export takes to read."""
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return engine.connect()


def _finish(engine: Engine, request_id: int, user_id: str, values: dict[str, Any], details: dict[str, Any]) -> bool:
    """running -> ready|failed with its audit entry, in one transaction. False when the row was
    no longer running (another run finished it, or retention expired it meanwhile)."""
    e = t.data_exports
    with engine.begin() as conn:
        changed = conn.execute(
            sa.update(e).where(e.c.id == request_id, e.c.status == "running").values(**values)
        ).rowcount
        if changed != 1:
            return False
        audit.append(
            conn, actor=ACTOR, action=audit.AuditAction.EXPORT, subject_type="user", subject_id=user_id,
            details={"request_id": request_id, **details},
        )
    return True


def _drop_unreferenced(engine: Engine, store: ObjectStore, bucket: str, request_id: int, key: str) -> None:
    """Delete the document unless its request is `ready` with this key (another run of the same
    request may have finished it: then the object is theirs and stays). Covers an erasure that
    committed while this export was being written: its row is gone, and so must the copy be."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(t.data_exports.c.status, t.data_exports.c.object_key).where(t.data_exports.c.id == request_id)
        ).first()
    if row is None or row.status != "ready" or row.object_key != key:
        try:
            store.delete(bucket, key)
        except Exception:  # noqa: BLE001 - best effort; the erasure's remnant scan names what is left
            pass


def handle_request(
    engine: Engine,
    store: ObjectStore,
    bucket: str,
    request_id: int,
    *,
    link_expiry: timedelta = DEFAULT_LINK_EXPIRY,
    allow_running: bool = True,
) -> ExportOutcome:
    """Handle one request end to end. Never raises for a problem with this request: the row
    ends `failed` with the reason, so one bad request cannot stop the others."""
    if not timedelta(seconds=1) <= link_expiry <= MAX_LINK_EXPIRY:
        raise ValueError(f"link expiry must be between 1 second and {MAX_LINK_EXPIRY}, got {link_expiry}")
    started = time.monotonic()
    with engine.begin() as conn:
        user_id = _claim(conn, request_id, allow_running=allow_running, now=_now())
        request = conn.execute(sa.select(t.data_exports).where(t.data_exports.c.id == request_id)).mappings().first()
    if user_id is None:
        why = "no such request" if request is None else f"already {request['status']}"
        return ExportOutcome(request_id, "skipped", error=why)
    key = export_key(user_id, request_id)
    try:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            with _snapshot(engine) as conn, conn.begin():
                counts = write_document(conn, user_id, dict(request), spool, generated_at=_now())
            if counts is None:
                _finish(engine, request_id, user_id,
                        {"status": "failed", "error": UNKNOWN_USER_REASON, "completed_at": _now()},
                        {"outcome": "failed", "reason": "unknown_user"})
                return ExportOutcome(request_id, "failed", seconds=time.monotonic() - started, error=UNKNOWN_USER_REASON)
            spool.seek(0)
            info = store.put(
                bucket, key, spool, content_type="application/json", encrypt=True,
                metadata={"request-id": str(request_id), "schema-version": str(SCHEMA_VERSION)},
            )
        # The recorded expiry is taken before signing, so it is never later than the link's own.
        expires_at = _now() + link_expiry
        url = store.presigned_get_url(bucket, key, link_expiry)
        finished = _finish(
            engine, request_id, user_id,
            {"status": "ready", "object_key": key, "download_url": url, "expires_at": expires_at,
             "completed_at": _now(), "error": None},
            {"outcome": "ready", "bytes": info.size, "sections": counts,
             "link_expires_in_seconds": int(link_expiry.total_seconds())},
        )
    except Exception as exc:  # noqa: BLE001 - recorded on the request; the others go on
        error = _reason(exc)
        try:
            _finish(engine, request_id, user_id, {"status": "failed", "error": error, "completed_at": _now()},
                    {"outcome": "failed", "reason": type(exc).__name__})
        except Exception:  # noqa: BLE001 - the database itself is down: the row stays running
            pass
        else:
            _drop_unreferenced(engine, store, bucket, request_id, key)
        return ExportOutcome(request_id, "failed", seconds=time.monotonic() - started, error=error, object_key=key)
    if not finished:
        # Erased or expired meanwhile: a document nothing points at must not stay behind.
        _drop_unreferenced(engine, store, bucket, request_id, key)
        return ExportOutcome(request_id, "skipped", error="finished elsewhere meanwhile", object_key=key)
    return ExportOutcome(
        request_id, "ready", bytes=info.size, seconds=time.monotonic() - started, object_key=key, sections=counts
    )


def handle_requests(
    engine: Engine,
    store: ObjectStore,
    bucket: str,
    request_ids: Sequence[int] | None = None,
    *,
    link_expiry: timedelta = DEFAULT_LINK_EXPIRY,
    pending_limit: int = DEFAULT_PENDING_LIMIT,
) -> ExportReport:
    """Handle the given requests (pending ones, and `running` ones left by a crashed run), or
    without ids the oldest pending ones. Each is handled on its own."""
    if request_ids is None:
        with engine.connect() as conn:
            ids: Iterable[int] = pending_request_ids(conn, limit=pending_limit)
        allow_running = False  # a running request without ids named may be in another run now
    else:
        ids, allow_running = dict.fromkeys(request_ids), True
    store.ensure_bucket(bucket)
    return ExportReport(tuple(
        handle_request(engine, store, bucket, rid, link_expiry=link_expiry, allow_running=allow_running) for rid in ids
    ))
