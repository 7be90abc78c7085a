"""Deliver a client's processed client-hours to the bucket the client owns.

Every processed hour not yet delivered (no `client_deliveries` row) is copied in the client's
format (Parquet as processed, or JSON lines) to
`<prefix>/dt=YYYY-MM-DD/hour=HH/repazoo-events-<YYYYMMDDHH>.<parquet|jsonl>`; the delivery record
is written after each file is read back and verified, and a delivery manifest (files, row counts,
SHA-256) closes the run. A failure stops this client's delivery where it is (the hours already
delivered stay recorded; the rest stay pending) and never touches another client's. Only keys
under `client_id=<this client>/` are read, and every row's `client_id` is checked before sending.

A processed hour re-written with different content after its delivery (late events) loses its
delivery record (`process.py` removes it), so it is pending again and is delivered again to the
same key. If the re-write races a delivery of that hour, the source is looked at again after the
record is written and the record is removed when the source changed meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.privacy_levels import raw_identifier_columns
from repazoo_assets.lib.storage.base import ObjectStore

_HOUR_KEY = "client_id={client}/dt={date}/hour={hour}/events.parquet"


class DeliveryError(RuntimeError):
    """A delivery failed; the message names the client and the problem, never data or secrets."""


@dataclass
class DeliveryReport:
    client_id: str
    files: list[dict] = field(default_factory=list)
    manifest_key: str | None = None

    @property
    def rows(self) -> int:
        return sum(f["row_count"] for f in self.files)


def is_due(frequency: str, now: datetime, last_delivery: datetime | None) -> bool:
    """Hourly: always. Daily: from 00:30 UTC, once a day. Weekly: Mondays from 00:30 UTC."""
    if frequency == "hourly":
        return True
    slot = now.astimezone(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    if frequency == "weekly":
        slot -= timedelta(days=slot.weekday())
    if now < slot:
        slot -= timedelta(days=7 if frequency == "weekly" else 1)
    return last_delivery is None or last_delivery < slot


def pending_hours(engine: Engine, processed: ObjectStore, processed_bucket: str, client_id: str) -> list[datetime]:
    with engine.connect() as conn:
        done = {
            w.replace(tzinfo=UTC) if w.tzinfo is None else w.astimezone(UTC)
            for w in conn.execute(
                sa.select(t.client_deliveries.c.window_start).where(t.client_deliveries.c.client_id == client_id)
            ).scalars()
        }
    hours = []
    for key in processed.list_keys(processed_bucket, f"client_id={client_id}/"):
        parts = dict(p.split("=", 1) for p in key.split("/")[:-1] if "=" in p)
        if parts.get("client_id") != client_id or not key.endswith("/events.parquet"):
            continue
        hour = datetime.strptime(f"{parts['dt']} {parts['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        if hour not in done:
            hours.append(hour)
    return sorted(hours)


def deliver_client(
    engine: Engine,
    processed: ObjectStore,
    processed_bucket: str,
    destination: ObjectStore,
    client: sa.Row,
    *,
    now: datetime | None = None,
) -> DeliveryReport:
    now = now or datetime.now(UTC)
    report = DeliveryReport(client.id)
    prefix = client.destination_prefix.strip("/")
    bucket = client.destination_bucket
    extension = "jsonl" if client.format == "jsonl" else "parquet"
    for hour in pending_hours(engine, processed, processed_bucket, client.id):
        source = _HOUR_KEY.format(client=client.id, date=f"{hour:%Y-%m-%d}", hour=f"{hour:%H}")
        source_bytes = processed.get(processed_bucket, source)
        source_sha256 = hashlib.sha256(source_bytes).hexdigest()
        table = pq.read_table(io.BytesIO(source_bytes))
        if set(table.column("client_id").to_pylist()) - {client.id}:
            raise DeliveryError(f"client {client.id}: refusing to deliver {source}, it holds another client's rows")
        if client.privacy_level in ("gdpr", "hipaa"):
            # The privacy scan again, here: the check on processed_events runs in another run, and
            # a third party must never receive a raw identifier whatever happened there.
            dirty, _ = raw_identifier_columns(table)
            if dirty:
                raise DeliveryError(
                    f"client {client.id}: refusing to deliver {source}, raw IP or e-mail in {', '.join(dirty)}"
                )
        if extension == "jsonl":
            body = b"".join(orjson.dumps(row, default=str) + b"\n" for row in table.to_pylist())
        else:
            body = source_bytes
        name = f"dt={hour:%Y-%m-%d}/hour={hour:%H}/repazoo-events-{hour:%Y%m%d%H}.{extension}"
        key = f"{prefix}/{name}" if prefix else name
        digest = hashlib.sha256(body).hexdigest()
        try:
            destination.put(bucket, key, body, content_type="application/x-ndjson" if extension == "jsonl"
                            else "application/vnd.apache.parquet", encrypt=client.privacy_level == "hipaa")
            info = destination.head(bucket, key)
        except Exception as exc:  # the store's errors name bucket and key, never credentials
            raise DeliveryError(f"client {client.id}: cannot write to s3://{bucket}/{key}: {exc}") from None
        if (info.size, info.sha256) != (len(body), digest):
            raise DeliveryError(f"client {client.id}: s3://{bucket}/{key} does not match what was sent")
        with engine.begin() as conn:
            conn.execute(
                sa.insert(t.client_deliveries).values(
                    client_id=client.id, window_start=hour, window_end=hour + timedelta(hours=1),
                    object_key=key, row_count=table.num_rows, sha256=digest, delivered_at=now,
                )
            )
        if processed.head(processed_bucket, source).sha256 != source_sha256:
            # Re-processed while it was being sent (late events): the processing side removes the
            # record only if it already exists, so this side removes it if it came second.
            with engine.begin() as conn:
                conn.execute(sa.delete(t.client_deliveries).where(
                    t.client_deliveries.c.client_id == client.id, t.client_deliveries.c.window_start == hour))
            continue
        report.files.append({"key": key, "row_count": table.num_rows, "sha256": digest, "hour": hour.isoformat()})
    if report.files:
        manifest = f"{prefix + '/' if prefix else ''}manifests/delivery-{now:%Y%m%dT%H%M%SZ}.json"
        destination.put(
            bucket, manifest, json.dumps({"client_id": client.id, "files": report.files}, indent=1).encode(),
            content_type="application/json",
        )
        report.manifest_key = manifest
    return report
