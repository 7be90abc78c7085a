"""Work the web app asks for on a user's behalf (`sync`, `analyse`), as rows in `user_requests`.

A request is `pending` until a run is launched for it: by the trigger client at once when it can
reach the Dagster webserver (`launching` while it submits), else by `user_requests_sensor`. It is
`launched` while its run is queued or running, then `done` or `failed`. At most one request per
user and kind is open (pending, launching or launched) — a unique partial index enforces it, so a
second `sync_user` while one is queued is the same request, however many web workers ask at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db.twitter_store import now_utc

OPEN = t.USER_REQUEST_OPEN_STATUSES
# What each kind runs: the whole tweet pipeline, or only the analyses of what is stored.
JOBS = {"sync": "tweet_pipeline", "analyse": "analyse_user"}
REQUEST_TAG = "repazoo/user_request_id"


@dataclass(frozen=True)
class UserRequest:
    id: int
    user_id: str
    kind: str
    status: str
    run_id: str | None
    requested_at: datetime
    launched_at: datetime | None = None

    @property
    def job_name(self) -> str:
        return JOBS[self.kind]


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _request(row) -> UserRequest:
    return UserRequest(
        row.id, row.user_id, row.kind, row.status, row.run_id, _utc(row.requested_at), _utc(row.launched_at)
    )


def _check_kind(kind: str) -> None:
    if kind not in JOBS:
        raise ValueError(f"unknown request kind {kind!r}; use one of {', '.join(JOBS)}")


def open_request(conn: Connection, user_id: str, kind: str) -> UserRequest | None:
    _check_kind(kind)
    row = conn.execute(
        sa.select(t.user_requests).where(
            t.user_requests.c.user_id == user_id,
            t.user_requests.c.kind == kind,
            t.user_requests.c.status.in_(OPEN),
        )
    ).first()
    return _request(row) if row else None


def get(conn: Connection, request_id: int) -> UserRequest | None:
    row = conn.execute(sa.select(t.user_requests).where(t.user_requests.c.id == request_id)).first()
    return _request(row) if row else None


def create(
    conn: Connection, user_id: str, kind: str, *, status: str = "pending", source: str = "web"
) -> tuple[UserRequest, bool]:
    """Insert an open request, or return the one already open (a concurrent insert loses the race
    on the unique index and gets the winner's row); the flag says whether this call inserted it."""
    _check_kind(kind)
    if status not in ("pending", "launching"):
        raise ValueError(f"a new request is pending or launching, not {status!r}")
    existing = open_request(conn, user_id, kind)
    if existing:
        return existing, False
    try:
        with conn.begin_nested():
            row = conn.execute(
                sa.insert(t.user_requests)
                .values(
                    user_id=user_id, kind=kind, status=status, source=source,
                    launched_at=now_utc() if status == "launching" else None,
                )
                .returning(*t.user_requests.c)
            ).one()
    except sa.exc.IntegrityError:
        existing = open_request(conn, user_id, kind)
        if existing is None:  # the user was deleted meanwhile (foreign key), not a race
            raise
        return existing, False
    return _request(row), True


def transition(conn: Connection, request_id: int, from_statuses: tuple[str, ...], to_status: str) -> bool:
    """Move the request to `to_status` only if it is in one of `from_statuses`: an atomic claim,
    so of a client and the sensor (or two clients) exactly one launches a pending request."""
    values: dict = {"status": to_status}
    if to_status in ("launching", "launched"):
        values["launched_at"] = now_utc()
    changed = conn.execute(
        sa.update(t.user_requests)
        .where(t.user_requests.c.id == request_id, t.user_requests.c.status.in_(from_statuses))
        .values(**values)
    ).rowcount
    return changed == 1


def set_status(conn: Connection, request_id: int, status: str, *, run_id: str | None = None) -> None:
    if status not in t.USER_REQUEST_STATUSES:
        raise ValueError(f"unknown request status {status!r}")
    values: dict = {"status": status}
    if run_id is not None:
        values["run_id"] = run_id
    if status in ("launching", "launched"):
        values["launched_at"] = now_utc()
    if status in ("done", "failed"):
        values["finished_at"] = now_utc()
    conn.execute(sa.update(t.user_requests).where(t.user_requests.c.id == request_id).values(**values))


def pending(conn: Connection, limit: int, *, stale_before: datetime | None = None) -> list[UserRequest]:
    """Requests waiting for a run: pending ones, and `launching` ones older than `stale_before`
    (a client that crashed or lost the webserver between recording and submitting)."""
    waiting = t.user_requests.c.status == "pending"
    if stale_before is not None:
        waiting = waiting | (
            (t.user_requests.c.status == "launching") & (t.user_requests.c.launched_at < stale_before)
        )
    rows = conn.execute(
        sa.select(t.user_requests)
        .where(waiting)
        .order_by(t.user_requests.c.id)
        .limit(limit)
    ).all()
    return [_request(r) for r in rows]


def launched(conn: Connection, limit: int) -> list[UserRequest]:
    rows = conn.execute(
        sa.select(t.user_requests)
        .where(t.user_requests.c.status == "launched")
        .order_by(t.user_requests.c.id)
        .limit(limit)
    ).all()
    return [_request(r) for r in rows]
