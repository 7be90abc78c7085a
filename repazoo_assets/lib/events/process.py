"""One hour of raw events, split per client under each client's privacy level.

Reads the raw batches that overlap the hour (verifying each object's SHA-256), keeps the events
of that hour, and writes one Parquet file per client-hour,
`client_id=<id>/dt=YYYY-MM-DD/hour=HH/events.parquet`, atomically (a rerun overwrites the same
key: idempotent). HIPAA objects ask for server-side encryption, and each HIPAA write is audited.
Events of clients that are unknown or removed were dead-lettered at export or are skipped here
(counted). A client's file holds only that client's events: the split is by `client_id`, checked
again before writing.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.export import SCHEMA, ExportError
from repazoo_assets.lib.events.privacy_levels import apply_level
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.storage.base import ObjectStore


@dataclass
class HourReport:
    hour: datetime
    raw_rows: int = 0
    written: dict[str, int] = field(default_factory=dict)  # client -> rows
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    keys: list[str] = field(default_factory=list)


def processed_key(client_id: str, hour: datetime) -> str:
    return f"client_id={client_id}/dt={hour:%Y-%m-%d}/hour={hour:%H}/events.parquet"


def process_hour(
    engine: Engine, store: ObjectStore, raw_bucket: str, processed_bucket: str, hour: datetime, key: bytes
) -> HourReport:
    end = hour + timedelta(hours=1)
    report = HourReport(hour)
    b = t.raw_batches
    with engine.connect() as conn:
        batches = conn.execute(
            sa.select(b.c.object_key, b.c.sha256).where(b.c.min_created_at < end, b.c.max_created_at >= hour)
            .order_by(b.c.first_event_id)
        ).all()
        clients = {
            row.id: row.privacy_level
            for row in conn.execute(
                sa.select(t.clients.c.id, t.clients.c.privacy_level).where(t.clients.c.deleted_at.is_(None))
            )
        }
    parts = []
    for batch in batches:
        data = store.get(raw_bucket, batch.object_key)
        if hashlib.sha256(data).hexdigest() != batch.sha256:
            raise ExportError(f"raw object {batch.object_key} does not match its recorded SHA-256")
        table = pq.read_table(io.BytesIO(data))
        times = table.column("created_at")
        parts.append(table.filter(pc.and_(pc.greater_equal(times, pa.scalar(hour, times.type)),
                                          pc.less(times, pa.scalar(end, times.type)))))
    events = pa.concat_tables(parts).cast(SCHEMA) if parts else SCHEMA.empty_table()
    report.raw_rows = events.num_rows
    for client_id in sorted(set(events.column("client_id").to_pylist())):
        mine = events.filter(pc.equal(events.column("client_id"), client_id))
        level = clients.get(client_id)
        if level is None:
            report.dropped["client removed"] += mine.num_rows
            continue
        result = apply_level(mine, level, key)
        if set(result.table.column("client_id").to_pylist()) - {client_id}:
            raise ExportError(f"refusing to write: rows of another client in {client_id}'s output")
        report.dropped.update(result.dropped)
        sink = io.BytesIO()
        pq.write_table(result.table, sink, compression="zstd")
        object_key = processed_key(client_id, hour)
        store.put(processed_bucket, object_key, sink.getvalue(), content_type="application/vnd.apache.parquet",
                  encrypt=level == "hipaa")
        if level == "hipaa":
            audit.append(
                engine, actor="pipeline:events", action=audit.AuditAction.EXPORT, subject_type="client",
                subject_id=client_id,
                details={"object": object_key, "rows": result.table.num_rows, "encryption": "AES256"},
            )
        report.written[client_id] = result.table.num_rows
        report.keys.append(object_key)
    return report
