"""Delete exported events from the app database, only once their raw copy is proven.

A batch's rows are deleted only if its raw object still exists with the size and SHA-256 recorded
when it was verified, and its newest event is older than the minimum age. The rows deleted are
exactly the batch's: its id range *and* its export window's transaction range on PostgreSQL, so a
late-committed event whose id falls inside the range (exported in a later window) is not touched.
A missing or altered object blocks its batch and raises an alert (deduplicated per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db.upsert import upsert
from repazoo_assets.lib.storage.base import ObjectNotFound, ObjectStore

MIN_AGE_RANGE = (timedelta(hours=1), timedelta(hours=24))


@dataclass
class CleanupReport:
    batches_cleaned: int = 0
    rows_deleted: int = 0
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (object key, reason)


def cleanup_exported_events(
    engine: Engine,
    store: ObjectStore,
    bucket: str,
    *,
    min_age: timedelta = timedelta(hours=1),
    max_batches: int = 50,
    now: datetime | None = None,
) -> CleanupReport:
    if not MIN_AGE_RANGE[0] <= min_age <= MIN_AGE_RANGE[1]:
        raise ValueError(f"min_age must be between 1 and 24 hours, got {min_age}")
    now = now or datetime.now(UTC)
    report = CleanupReport()
    b, w, e = t.raw_batches, t.raw_export_windows, t.events_log
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        batches = conn.execute(
            sa.select(b, w.c.xid_from, w.c.xid_to)
            .join(w, w.c.id == b.c.window_id)
            .where(b.c.cleaned_at.is_(None), b.c.verified_at.is_not(None), b.c.max_created_at < now - min_age)
            .order_by(b.c.id)
            .limit(max_batches)
        ).all()
    for batch in batches:
        problem = _verify(store, bucket, batch)
        if problem:
            report.blocked.append((batch.object_key, problem))
            with engine.begin() as conn:
                upsert(
                    conn,
                    t.alerts,
                    [
                        {
                            "check_name": "raw_object_integrity",
                            "severity": "critical",
                            "message": f"raw object {batch.object_key} is {problem}: its events are kept",
                            "dedup_key": f"raw_object_integrity:{batch.id}",
                        }
                    ],
                    key=["dedup_key"],
                    update=[],
                )
            continue
        with engine.begin() as conn:  # one batch (at most chunk_rows rows) per transaction
            delete = sa.delete(e).where(e.c.id.between(batch.first_event_id, batch.last_event_id))
            if postgres:
                delete = delete.where(e.c.txid >= batch.xid_from, e.c.txid < batch.xid_to)
            deleted = conn.execute(delete).rowcount
            conn.execute(sa.update(b).where(b.c.id == batch.id).values(cleaned_at=now))
        report.batches_cleaned += 1
        report.rows_deleted += deleted
    return report


def _verify(store: ObjectStore, bucket: str, batch) -> str | None:
    try:
        info = store.head(bucket, batch.object_key)
    except ObjectNotFound:
        return "missing"
    if info.size != batch.byte_size or info.sha256 != batch.sha256:
        return "altered"
    return None
